/**
 * @module
 * A fault-injecting HTTP proxy for tests, bound to 127.0.0.1 on an ephemeral port, in front of the
 * real S3 server. Each request is matched against a rule that picks a fault: latency, an injected
 * status (503, 429), a dropped connection before the request reaches the server or after the
 * server acted but before the client hears back, a response cut mid-body, or a blackhole.
 *
 * It forwards requests byte for byte (the Host header included), so SigV4 signatures made for the
 * proxy's address stay valid at the server behind it.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";

export type Fault =
  /** Forward as is, after an optional delay. */
  | { kind: "pass"; latencyMs?: number }
  /** Answer with this status and an S3 error document; the server never sees the request. */
  | { kind: "status"; status: number; code?: string }
  /** Drop the connection without forwarding: the request never happened. */
  | { kind: "reset-before-request" }
  /** Forward (the server acts), then drop the connection before answering: the outcome is unknown. */
  | { kind: "reset-before-response" }
  /** Forward, then send the headers and only `bodyBytes` of the body, then drop the connection. */
  | { kind: "truncate"; bodyBytes: number }
  /** Accept the request and never answer. */
  | { kind: "blackhole" };

export interface ProxiedRequest {
  method: string;
  /** Path and query, as the client sent them. */
  url: string;
  /** 1 for the first request the proxy saw. */
  sequence: number;
  /** The request's headers, names in lower case (what the client signed and sent). */
  headers: Record<string, string | string[] | undefined>;
}

export type FaultRule = (request: ProxiedRequest) => Fault;

export interface FaultProxy {
  /** `http://127.0.0.1:port`: give it to the client as its endpoint. */
  readonly endpoint: string;
  /** Requests seen, by the fault they got. */
  readonly counts: Record<Fault["kind"], number>;
  /** Requests that reached the server behind the proxy. */
  readonly forwarded: ProxiedRequest[];
  setRule(rule: FaultRule): void;
  close(): Promise<void>;
}

const PASS: Fault = { kind: "pass" };

/** The first `count` requests matching `match` get `fault`; everything else passes. */
export function failFirst(count: number, fault: Fault,
  match: (request: ProxiedRequest) => boolean = () => true): FaultRule {
  let left = count;
  return (request) => {
    if (left > 0 && match(request)) {
      left--;
      return fault;
    }
    return PASS;
  };
}

/** Starts a proxy to `upstream` (`http://host:port`); every request passes until a rule is set. */
export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const target = new URL(upstream);
  let rule: FaultRule = () => PASS;
  let sequence = 0;
  const counts: Record<Fault["kind"], number> = {
    "pass": 0,
    "status": 0,
    "reset-before-request": 0,
    "reset-before-response": 0,
    "truncate": 0,
    "blackhole": 0,
  };
  const forwarded: ProxiedRequest[] = [];
  const hanging = new Set<http.ServerResponse>();

  const server = http.createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const seen: ProxiedRequest = { method: request.method ?? "GET", url: request.url ?? "/", sequence: ++sequence,
      headers: request.headers };
    const fault = rule(seen);
    counts[fault.kind]++;
    if (fault.kind === "blackhole") {
      hanging.add(response);
      return;
    }
    if (fault.kind === "reset-before-request") return void request.socket.destroy();
    if (fault.kind === "status") {
      const code = fault.code ?? (fault.status === 429 ? "SlowDown" : "ServiceUnavailable");
      response.writeHead(fault.status, { "content-type": "application/xml", "connection": "close" });
      return void response.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code>` +
        "<Message>injected by the test proxy</Message></Error>");
    }
    if (fault.kind === "pass" && fault.latencyMs) await new Promise((r) => setTimeout(r, fault.latencyMs));
    forwarded.push(seen);
    const answer = await forward(target, request, body).catch(() => undefined);
    if (!answer) return void request.socket.destroy();
    if (fault.kind === "reset-before-response") return void request.socket.destroy();
    response.writeHead(answer.status, answer.headers);
    if (fault.kind === "truncate") {
      response.write(answer.body.subarray(0, Math.min(fault.bodyBytes, Math.max(0, answer.body.length - 1))));
      // Let the partial body leave before the connection drops.
      setTimeout(() => request.socket.destroy(), 10);
      return;
    }
    response.end(answer.body);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    forwarded,
    setRule(next) {
      rule = next;
    },
    async close() {
      for (const response of hanging) response.socket?.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface Answer {
  status: number;
  headers: http.OutgoingHttpHeaders;
  body: Buffer;
}

function forward(target: URL, request: http.IncomingMessage, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const upstream = http.request({
      host: target.hostname,
      port: target.port,
      method: request.method,
      path: request.url,
      headers: request.headers, // Host included: the client signed it
    }, (answer) => {
      const chunks: Buffer[] = [];
      answer.on("data", (chunk: Buffer) => chunks.push(chunk));
      answer.on("end", () => {
        const headers: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) {
          if (value !== undefined && name !== "transfer-encoding" && name !== "connection") headers[name] = value;
        }
        const bytes = Buffer.concat(chunks);
        if (request.method !== "HEAD") headers["content-length"] = String(bytes.length);
        resolve({ status: answer.statusCode ?? 502, headers, body: bytes });
      });
      answer.on("error", reject);
    });
    upstream.on("error", reject);
    upstream.end(body);
  });
}
