/**
 * @module
 * `PipeConsumer`: the extension of a DuckDB host in another process, as the replicator sees it.
 * The host's extension starts `haduck sidecar <db>` with a socket as its stdin and stdout and
 * speaks lines (extension/src/sidecar.hpp has the protocol): generations and hold waits come in;
 * releases go out and their answers come back. The hold works as in one process: DuckDB's next
 * header waits until the host has our release.
 */
import type { Consumer, GenerationInfo } from "./_consumer.ts";
import { RING_LAYOUT as L, type RingEvent } from "./_ring_layout.ts";

/** The file id every event of a sidecar carries: it serves one database. */
export const SIDECAR_FILE_ID = 1;

export interface PipeConsumerOptions {
  /** Lines from the host (its socket, our stdin). */
  input: AsyncIterable<Uint8Array | string>;
  /** Writes one line to the host. */
  write: (line: string) => void;
  dbPath: string;
  /** DuckDB's block checksum (the sidecar's own copy of the extension). */
  blockChecksumOk: (block: Uint8Array) => boolean;
}

export class PipeConsumer implements Consumer {
  readonly #options: PipeConsumerOptions;
  readonly #events: RingEvent[] = [];
  readonly #generations = new Map<bigint, { info: GenerationInfo; blocks: number[] }>();
  readonly #answers = new Map<bigint, { promise: Promise<number>; resolve: (result: number) => void }>();
  /** The newest generation handed over: the host may send one twice when a replicator takes over (skip it). */
  #newestSeq = 0n;
  #overflow = false;
  #fullScanNext = false;
  #open = true;
  /** Resolves when the host is gone (end of input): then the sidecar ships what the file holds and exits. */
  readonly closed: Promise<void>;

  constructor(options: PipeConsumerOptions) {
    this.#options = options;
    this.closed = this.#read();
  }

  async #read(): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    try {
      for await (const chunk of this.#options.input) {
        pending += typeof chunk === "string" ? chunk : decoder.decode(chunk, { stream: true });
        for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
          this.#handle(pending.slice(0, end));
          pending = pending.slice(end + 1);
        }
      }
    } catch {
      // A host that exits with our lines unread resets the socket: for us that is its end all the same.
    } finally {
      this.#open = false;
      for (const answer of this.#answers.values()) answer.resolve(-1); // nobody holds anything any more
      this.#answers.clear();
    }
  }

  #handle(line: string): void {
    const [verb, ...fields] = line.split(" ");
    if (verb === "gen") {
      if (BigInt(fields[0]) <= this.#newestSeq) return;
      this.#newestSeq = BigInt(fields[0]);
      const [seq, generation, headerBlockCount, blockAllocSize, createdUnixMs, fullScan, count, list] = fields;
      const blocks = Number(count) > 0 ? list.split(",").map(Number) : [];
      const info: GenerationInfo = { seq: BigInt(seq), fileId: SIDECAR_FILE_ID, generation: Number(generation),
        blockCount: blocks.length, headerBlockCount: Number(headerBlockCount), blockAllocSize: Number(blockAllocSize),
        createdUnixMs: Number(createdUnixMs), needsFullScan: fullScan === "1" || this.#fullScanNext };
      this.#fullScanNext = false;
      this.#generations.set(info.seq, { info, blocks });
      this.#events.push({ type: L.HADUCK_EVENT_GENERATION_READY, fileId: SIDECAR_FILE_ID, a: info.seq,
        b: BigInt(generation), c: BigInt(blocks.length), d: BigInt(headerBlockCount) });
    } else if (verb === "wal") {
      // wal <generation> <size> <ms> <lost> <n> <first:count,...>: the ring's WAL_BLOCKS events, then WAL_SYNCED.
      const [generation, size, unixMs, lost, count, list] = fields;
      for (const run of Number(count) > 0 ? list.split(",") : []) {
        const [first, blocks] = run.split(":").map(BigInt);
        this.#events.push({ type: L.HADUCK_EVENT_WAL_BLOCKS, fileId: SIDECAR_FILE_ID, a: first, b: blocks, c: 0n, d: 0n });
      }
      this.#events.push({ type: L.HADUCK_EVENT_WAL_SYNCED, fileId: SIDECAR_FILE_ID, a: BigInt(generation),
        b: BigInt(size), c: BigInt(unixMs), d: BigInt(lost) });
    } else if (verb === "walreset") {
      this.#events.push({ type: L.HADUCK_EVENT_WAL_RESET, fileId: SIDECAR_FILE_ID, a: BigInt(fields[0]),
        b: BigInt(fields[1]), c: 0n, d: 0n });
    } else if (verb === "wait") {
      this.#events.push({ type: L.HADUCK_EVENT_HOLD_WAITING, fileId: SIDECAR_FILE_ID, a: BigInt(fields[0]), b: 0n,
        c: 0n, d: 0n });
    } else if (verb === "released") {
      const seq = BigInt(fields[0]);
      this.#answers.get(seq)?.resolve(Number(fields[1]));
      this.#answers.delete(seq);
    } else if (verb === "overflow") {
      // The host dropped messages (its outbox was full): the next generation compares every block.
      this.#overflow = true;
      this.#fullScanNext = true;
    }
  }

  attach(): void {}
  detach(): void {}

  drain(): RingEvent[] {
    return this.#events.splice(0);
  }

  takeOverflow(): boolean {
    const overflow = this.#overflow;
    this.#overflow = false;
    return overflow;
  }

  pendingGenerations(): bigint[] {
    return [...this.#generations.keys()];
  }

  generationInfo(seq: bigint): GenerationInfo | undefined {
    return this.#generations.get(seq)?.info;
  }

  generationBlocks(seq: bigint): number[] {
    return this.#generations.get(seq)?.blocks ?? [];
  }

  release(seq: bigint): Promise<number> {
    this.#generations.delete(seq);
    if (!this.#open) return Promise.resolve(-1);
    const pending = this.#answers.get(seq);
    if (pending) return pending.promise; // released twice (a hold wait and the ship): one question, one answer
    let resolve!: (result: number) => void;
    const promise = new Promise<number>((done) => resolve = done);
    this.#answers.set(seq, { promise, resolve });
    this.#options.write(`release ${seq}`);
    return promise;
  }

  filePath(fileId: number): string | undefined {
    return fileId === SIDECAR_FILE_ID ? this.#options.dbPath : undefined;
  }

  blockChecksumOk(block: Uint8Array): boolean {
    return this.#options.blockChecksumOk(block);
  }
}
