/**
 * @module
 * The Prometheus text exposition (format 0.0.4) of every served database: counters end in
 * `_total`, each family has its HELP and TYPE once, labels are escaped.
 */
import type { ReplicaStoreStatus } from "@haduck/duckblock";
import type { AdminDatabase } from "./_types.ts";

interface Family {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: (database: AdminDatabase) => number | undefined;
}

const FAMILIES: Family[] = [
  { name: "haduck_leader", type: "gauge", help: "1 while this node leads the database (writes it), else 0.",
    value: (d) => (d.cluster?.().role ?? d.role) === "leader" ? 1 : 0 },
  { name: "haduck_lease_epoch", type: "gauge", help: "The newest lease epoch this node has seen.",
    value: (d) => d.cluster?.().epoch },
  { name: "haduck_replica_lag_seconds", type: "gauge",
    help: "How long the store has held a commit this node's reads do not show yet.",
    value: (d) => d.cluster ? d.cluster().lagMs / 1000 : undefined },
  { name: "haduck_replica_blocks_missing", type: "gauge",
    help: "Blocks of a lazily opened replica not local yet (0 once it is whole).",
    value: (d) => {
      const hydration = d.cluster?.().hydration;
      return d.cluster ? (hydration ? hydration.blocksTotal - hydration.blocksLocal : 0) : undefined;
    } },
  { name: "haduck_forwarded_statements_total", type: "counter", help: "Statements this node sent to the leader.",
    value: (d) => d.cluster?.().forwarded },
  { name: "haduck_last_takeover_seconds", type: "gauge", help: "How long this node's last takeover took.",
    value: (d) => d.cluster?.().lastTakeover ? d.cluster!().lastTakeover!.tookMs / 1000 : undefined },
  { name: "haduck_generations_committed_total", type: "counter", help: "Generations committed to the store.",
    value: (d) => d.status().generationsCommitted },
  { name: "haduck_generations_abandoned_total", type: "counter",
    help: "Generations given back, not published (an upload failed, or the extension abandoned its hold); their blocks ship later.",
    value: (d) => d.status().generationsAbandoned },
  { name: "haduck_blocks_shipped_total", type: "counter", help: "DuckDB blocks uploaded.",
    value: (d) => d.status().blocksShipped },
  { name: "haduck_bytes_shipped_total", type: "counter", help: "Segment bytes uploaded.",
    value: (d) => d.status().bytesShipped },
  { name: "haduck_errors_total", type: "counter", help: "Failed uploads, reads and catch-ups.",
    value: (d) => d.status().errors },
  { name: "haduck_store_requests_total", type: "counter", help: "Requests sent to the object store.",
    value: (d) => d.storeStats?.().requests },
  { name: "haduck_store_retries_total", type: "counter", help: "Object store requests retried.",
    value: (d) => d.storeStats?.().retries },
  { name: "haduck_generations_pending", type: "gauge", help: "Generations announced and not yet shipped.",
    value: (d) => d.status().generationsPending },
  { name: "haduck_blocks_carried", type: "gauge", help: "Blocks of failed generations waiting to ship.",
    value: (d) => d.status().blocksCarried },
  { name: "haduck_last_generation", type: "gauge", help: "The newest committed generation (DuckDB iteration).",
    value: (d) => d.status().lastGeneration ?? undefined },
  { name: "haduck_lag_seconds", type: "gauge", help: "How long the oldest checkpoint not yet in the store has waited.",
    value: (d) => d.status().lagMs / 1000 },
  { name: "haduck_wal_lag_seconds", type: "gauge",
    help: "Age of the oldest locally durable commit not yet in the store (the RPO now).",
    value: (d) => (d.status().walLagMs ?? 0) / 1000 },
  { name: "haduck_wal_frames_total", type: "counter", help: "WAL frames written to the store.",
    value: (d) => d.status().framesShipped ?? 0 },
  { name: "haduck_last_durable_commit_timestamp_seconds", type: "gauge",
    help: "Commit time of the newest commit the store holds in a WAL frame.",
    value: (d) => d.status().lastDurableCommit ? Date.parse(d.status().lastDurableCommit!) / 1000 : undefined },
];

const escapeLabel = (value: string) => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

/** A gauge per replica store of a database, labelled `store` with the store's URL (which holds no secrets). */
interface ReplicaFamily {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: (replica: ReplicaStoreStatus) => number;
}

const REPLICA_FAMILIES: ReplicaFamily[] = [
  { name: "haduck_replica_store_objects_behind", type: "gauge",
    help: "Objects the primary store holds that this replica store does not yet.", value: (r) => r.objectsBehind },
  { name: "haduck_replica_store_bytes_behind", type: "gauge",
    help: "Bytes the primary store holds that this replica store does not yet.", value: (r) => r.bytesBehind },
  { name: "haduck_replica_store_lag_seconds", type: "gauge",
    help: "How long the oldest object this replica store does not hold yet has waited.", value: (r) => r.lagMs / 1000 },
  { name: "haduck_replica_store_up", type: "gauge",
    help: "0 while this replica store's last request failed (see lastError in /status), else 1.",
    value: (r) => r.state === "failing" ? 0 : 1 },
  { name: "haduck_replica_store_errors_total", type: "counter", help: "Failed requests to this replica store (retried).",
    value: (r) => r.errors },
  { name: "haduck_replica_store_objects_copied_total", type: "counter", help: "Objects copied to this replica store.",
    value: (r) => r.objectsCopied },
];

/** Renders the metrics of `databases` as Prometheus text. */
export function renderMetrics(databases: AdminDatabase[]): string {
  const lines: string[] = [];
  for (const family of FAMILIES) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    for (const database of databases) {
      const value = family.value(database);
      if (value === undefined || !Number.isFinite(value)) continue;
      lines.push(`${family.name}{db="${escapeLabel(database.dbKey)}"} ${value}`);
    }
  }
  const replicas = databases.map((database) => ({ database, stores: database.status().replicaStores ?? [] }));
  if (replicas.some(({ stores }) => stores.length > 0)) {
    for (const family of REPLICA_FAMILIES) {
      lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
      for (const { database, stores } of replicas) {
        for (const replica of stores) {
          lines.push(`${family.name}{db="${escapeLabel(database.dbKey)}",store="${escapeLabel(replica.url)}"} ` +
            `${family.value(replica)}`);
        }
      }
    }
  }
  return lines.join("\n") + "\n";
}
