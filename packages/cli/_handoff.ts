/**
 * @module
 * `haduck handoff --node URL [--to URL]`: asks a cluster's leader, through any node's admin
 * endpoint, to hand its lease over without stopping.
 */
import { readFileSync } from "node:fs";
import { HELP } from "./_help.ts";
import { EXIT, isCertificateError, NodeUnreachableError, NodeUntrustedError, parse, UsageError } from "./_command.ts";

/** `haduck handoff --node URL [--to URL]`: the leader hands its lease over without stopping. */
export async function commandHandoff(args: string[]): Promise<number> {
  const { values } = parse(args, { node: { type: "string" }, to: { type: "string" }, db: { type: "string" },
    "tls-ca": { type: "string" } });
  if (values.help) return (console.log(HELP.handoff), EXIT.ok);
  if (!values.node) throw new UsageError("handoff needs --node URL (any node of the cluster, e.g. http://127.0.0.1:8080)");
  checkNodeUrl("--node", values.node);
  if (values.to !== undefined) checkNodeUrl("--to", values.to);
  const token = process.env.HADUCK_ADMIN_TOKEN;
  if (!token) throw new UsageError("handoff needs the cluster's token in HADUCK_ADMIN_TOKEN");
  let tls = {};
  if (values["tls-ca"] !== undefined) {
    try {
      tls = { tls: { ca: readFileSync(values["tls-ca"], "utf8") } };
    } catch (error) {
      throw new UsageError(`--tls-ca ${values["tls-ca"]}: ${(error as Error).message}; give the PEM file of the CA ` +
        "that signed the nodes' certificates");
    }
  }
  const base = (url: string) => url.endsWith("/") ? url : `${url}/`;
  const call = async (url: string, path: string, body?: unknown) => {
    let response: Response;
    try {
      response = await fetch(`${base(url)}${path}`, { method: body === undefined ? "GET" : "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body), ...tls } as RequestInit);
    } catch (error) {
      if (isCertificateError(error)) throw new NodeUntrustedError(url, error);
      throw new NodeUnreachableError(url, error);
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${base(url)}${path} answered ${response.status}: ${answer.message ?? answer.error ?? ""}`);
    return answer;
  };
  // Any node will do: the handoff goes to the leader it names.
  const status = await call(values.node, "status");
  const entry = values.db ? status.databases.find((d: { db: string }) => d.db === values.db) : status;
  if (!entry) throw new UsageError(`${values.node} serves no database ${values.db}`);
  const leader = entry.role === "leader" ? base(values.node) : entry.leader;
  if (!leader) throw new Error(`no node leads ${values.db ?? "the database"} now: nothing to hand off`);
  const result = await call(leader, "handoff", { db: values.db, to: values.to });
  console.log(`${result.db}: ${leader} handed off to ${result.leader ?? "nobody yet"} in ${result.tookMs} ms`);
  return result.leader ? EXIT.ok : EXIT.failure;
}

/** A node's address must be a URL Bun can fetch: `127.0.0.1:8080` parses as a scheme, or not at all. */
function checkNodeUrl(flag: string, value: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    // Not a URL at all: said below.
  }
  if (protocol !== "http:" && protocol !== "https:") {
    throw new UsageError(`${flag} needs a URL that starts with http:// or https://` +
      (value.includes("://") ? `, not ${value}` : `: http://${value}, not ${value}`));
  }
}
