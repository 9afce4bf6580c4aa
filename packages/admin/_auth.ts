/**
 * @module
 * Bearer-token checking in constant time: both sides are hashed first, so neither the token's
 * bytes nor its length show in the time a comparison takes.
 */
import { HTTPException } from "hono/http-exception";
import type { MiddlewareHandler } from "hono";

async function digest(value: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value)));
}

/** Whether `given` equals `expected`, compared in constant time. */
export async function tokensEqual(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([digest(given), digest(expected)]);
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** What a request's token allows: everything, or reads on `POST /sql` only. */
export type Access = "admin" | "read";

/**
 * The access of a request's `Authorization: Bearer <token>`: the admin token, or the read token
 * (when one is set); 401 for none or another.
 */
export async function accessOf(header: string | undefined, token: string, readToken?: string): Promise<Access> {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  if (match && await tokensEqual(match[1], token)) return "admin";
  if (match && readToken !== undefined && await tokensEqual(match[1], readToken)) return "read";
  throw new HTTPException(401, {
    message: "a bearer token is required: send Authorization: Bearer <HADUCK_ADMIN_TOKEN>",
  });
}

/**
 * Refuses (401) every request without `Authorization: Bearer <token>`, and (403) one with the read
 * token: it may only run reads on `POST /sql`.
 */
export function requireToken(token: string, readToken?: string): MiddlewareHandler {
  if (typeof token !== "string" || token.length < 16) {
    throw new RangeError("The admin token must be at least 16 characters; set HADUCK_ADMIN_TOKEN or let haduck " +
      "generate one");
  }
  return async (c, next) => {
    if (await accessOf(c.req.header("authorization"), token, readToken) === "read") {
      throw new HTTPException(403, { message: "this token (HADUCK_READ_TOKEN) may only run reads on POST /sql" });
    }
    await next();
  };
}

/** A fresh random token (128 bits, hex) for when none is configured. */
export function generateToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
