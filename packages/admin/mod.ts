/**
 * @module
 * `@haduck/admin`: the admin HTTP app (Hono) for databases haduck replicates: health, status,
 * Prometheus metrics, generations, checkpoint on demand and a live dashboard. Runtime-neutral:
 * serve `app.fetch` with `Bun.serve`, `Deno.serve` or any Fetch-API server.
 *
 * @example
 * ```ts
 * import { createAdminApp, generateToken } from "@haduck/admin";
 * const token = generateToken();
 * const app = createAdminApp({ token, databases: [] });
 * const response = await app.request("/status", { headers: { authorization: `Bearer ${token}` } });
 * console.log(await response.json()); // { databases: [] }
 * ```
 */
export { type AdminAppOptions, createAdminApp } from "./_app.ts";
export { generateToken, tokensEqual } from "./_auth.ts";
export { renderMetrics } from "./_metrics.ts";
export {
  type AdminDatabase,
  type ClusterMember,
  type ClusterRole,
  type ClusterView,
  type Failover,
  type MemberReport,
  NoLeaderError,
  ReadOnlyError,
  NotDurableError,
  type SqlAnswer,
  SqlError,
  type SqlRequest,
} from "./_types.ts";
