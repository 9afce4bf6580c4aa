/**
 * @module
 * A cluster node's HTTP to the leader: a statement forwarded to it (`POST /sql`, the caller's token
 * carried on), and the role a node says it has (`GET /status`, for a handoff waiting for its
 * successor). What comes back is passed on as it came, except the leader's refusals of a statement
 * it did not run, which say the statement may go to the next leader.
 */
import { NoLeaderError, type SqlRequest } from "@haduck/admin";
import { createHmac, timingSafeEqual } from "node:crypto";

/** A forwarded statement may wait this long for the leader's answer (a durable write waits for the store). */
const FORWARD_TIMEOUT_MS = 15_000;

/** What a forward needs besides the statement. */
export interface ForwardSettings {
  dbKey: string;
  /** The bearer token of every node (sent when the caller gave none). */
  token: string;
  /** PEM of the CA the leader's certificate is checked against (`--tls-ca`). */
  ca?: string;
  /** A read: whatever became of it, it may be asked of the next leader. */
  read: boolean;
}

/**
 * Sends the statement to `leader` and passes its answer on. `{ retry }` (why) when the statement
 * certainly did not run there (the connection was refused, or the leader refused it unrun with
 * `NO_LEADER`), or is a read: it may go to the next leader. Throws when its outcome is unknown, or
 * when the leader is not trusted.
 */
export async function forwardStatement(leader: string, request: SqlRequest, settings: ForwardSettings):
  Promise<Response | { retry: string }> {
  const { dbKey, token, ca, read } = settings;
  let answer: Response;
  try {
    answer = await fetch(`${leader}sql`, {
      method: "POST",
      // The caller's token goes on: the leader allows what the caller may do, no more.
      headers: { authorization: request.authorization ?? `Bearer ${token}`,
        "content-type": "application/json", "x-haduck-forwarded": "1" },
      body: JSON.stringify({ sql: request.sql, params: request.params, durable: request.durable,
        db: dbKey, consistency: request.consistency }),
      // A client that leaves takes its statement with it: the leader sees the disconnect and interrupts it.
      signal: request.signal ? AbortSignal.any([AbortSignal.timeout(FORWARD_TIMEOUT_MS), request.signal])
        : AbortSignal.timeout(FORWARD_TIMEOUT_MS),
      // Bun's fetch: the nodes' certificates are checked against --tls-ca (else the system's CAs).
      ...(ca ? { tls: { ca } } : {}),
    } as RequestInit);
  } catch (error) {
    // Refused before it connected: the statement never reached the leader, so it may go to the next.
    const code = (error as { code?: string }).code ?? "";
    if (code === "ECONNREFUSED") return { retry: `${leader} refused the connection` };
    // A read changes nothing: whatever became of it, it may be asked of the next leader.
    if (read && !request.signal?.aborted) return { retry: `${leader} did not answer the read (${code})` };
    if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|TLS|SSL/i.test(code)) {
      // The handshake failed: nothing was sent. Retrying would fail the same way.
      throw new NoLeaderError(`${dbKey}: the leader ${leader} is not trusted (${code}: ` +
        `${(error as Error).message}); give --tls-ca the PEM of the CA that signed the nodes' certificates`);
    }
    throw Object.assign(new Error(`${dbKey}: the leader ${leader} did not answer ` +
      `(${(error as Error).message}); the statement's outcome is unknown: read before you run it again`),
      { code: "UNKNOWN_OUTCOME" });
  }
  const body = await answer.arrayBuffer();
  if (answer.status === 503) {
    let code: unknown;
    try {
      code = JSON.parse(new TextDecoder().decode(body)).code;
    } catch {
      // not ours: passed on as it came
    }
    if (code === "NO_LEADER") return { retry: `${leader} does not lead now` }; // refused unrun
  }
  return new Response(body, { status: answer.status,
    headers: { "content-type": answer.headers.get("content-type") ?? "application/json",
      ...(answer.headers.get("x-haduck-position") ? { "x-haduck-position": answer.headers.get("x-haduck-position")! }
        : {}) } });
}

/**
 * The role the node at `address` says it has for `dbKey` (undefined: no answer within a second).
 * A node serving several databases answers for each; the top-level role is its first's.
 */
export async function roleAt(address: string, settings: { dbKey: string; token: string; ca?: string }):
  Promise<string | undefined> {
  return await fetch(`${address}status`, { headers: { authorization: `Bearer ${settings.token}` },
    signal: AbortSignal.timeout(1000), ...(settings.ca ? { tls: { ca: settings.ca } } : {}) } as RequestInit)
    .then(async (response) => {
      // A node serving several databases: this one's entry (the top-level role is its first's).
      const body = await response.json();
      return body.databases?.find((entry: { db?: string }) => entry.db === settings.dbKey)?.role ?? body.role;
    }, () => undefined);
}

/**
 * What a node records in the lease beside its address: an HMAC-SHA256 of the address under the
 * nodes' shared token. Whoever can write the store can write a lease naming any address; without
 * the token it cannot vouch for one, and the nodes send their token, a client's token or a
 * statement only to an address vouched for (a forged lease took the admin token and clients'
 * statements: attack of 2026-12-07).
 */
export function addressProof(token: string, address: string): string {
  return createHmac("sha256", token).update(`haduck-leader-address\n${address}`).digest("hex");
}

/** The lease record's address when its proof holds under `token`, else null. */
export function vouchedAddress(token: string, record: { address: string | null; proof?: string | null }):
  string | null {
  if (!record.address) return null;
  const expected = Buffer.from(addressProof(token, record.address));
  const given = Buffer.from(typeof record.proof === "string" ? record.proof : "");
  return given.length === expected.length && timingSafeEqual(given, expected) ? record.address : null;
}

/** `vouchedAddress` for one node: its token, and its log, which hears of each address without a proof once. */
export function vouching(options: () => { token: string; dbKey: string; log(message: string): void }) {
  let said = "";
  return (record: { holder: string; address: string | null; proof?: string | null }) => {
    const address = vouchedAddress(options().token, record);
    if (address === null && record.address && said !== `${record.holder} ${record.address}`) {
      said = `${record.holder} ${record.address}`;
      options().log(`${options().dbKey}: the lease names ${record.address} (holder ${record.holder}) without a ` +
        "proof made with this node's HADUCK_ADMIN_TOKEN: nothing is sent there (do all nodes share the token? is " +
        "something else writing the store?)");
    }
    return address;
  };
}
