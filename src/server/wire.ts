/**
 * What crosses the wire (docs/server-api.md): request bodies checked with valibot (unknown members
 * are refused, so a typo is not silently ignored), and records turned into their JSON shapes.
 * Binary values are standard base64 of DER. A rejected body names the field and what was expected,
 * never the value it held (it could be a join token).
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as v from "valibot";
import type { RegistrationEntry } from "./store/index.ts";
import { ApiError, errorBody } from "./errors.ts";
import { CsrError, fromBase64, toBase64 } from "../x509/index.ts";

/** Request bodies are small: a CSR is well under 1 KiB, an entry a few. */
export const MAX_BODY_BYTES = 64 * 1024;

const text = (max: number) => v.pipe(v.string(), v.minLength(1, "must not be empty"), v.maxLength(max, `must be at most ${max} characters`));
const seconds = v.pipe(v.number(), v.integer("must be a whole number"), v.minValue(1, "must be at least 1"), v.maxValue(100 * 365 * 86400, "is too large"));

export const AttestBody = v.strictObject({ token: text(512), csr: text(16384) });
export const RenewBody = v.strictObject({ csr: text(16384) });
export const SvidBody = v.strictObject({ entry_id: text(128), csr: text(16384) });
export const EntryBody = v.strictObject({
  spiffe_id: text(2048),
  parent_id: text(2048),
  selectors: v.pipe(v.array(text(1024)), v.minLength(1, "needs at least one selector"), v.maxLength(64, "at most 64 selectors")),
  ttl_seconds: v.optional(seconds),
  dns_names: v.optional(v.pipe(v.array(text(253)), v.maxLength(32, "at most 32 DNS names"))),
});
export const TokenBody = v.strictObject({ node: text(255), ttl_seconds: v.optional(seconds) });
export const RotateBody = v.strictObject({ root: v.optional(v.boolean()) });

function describe(issue: v.BaseIssue<unknown>): string {
  const field = (issue.path ?? []).map((p) => String(p.key)).join(".");
  const where = field === "" ? "the body" : `field ${JSON.stringify(field)}`;
  if (issue.type === "strict_object" && issue.expected === "never") return `${where} is not a known field`;
  if (issue.kind === "schema") return issue.input === undefined ? `${where} is missing` : `${where}: expected ${issue.expected === "Object" ? "an object" : issue.expected}`;
  return `${where} ${issue.message}`;
}

/** The JSON body of `c` checked against `schema`; 400 bad_request otherwise. */
export async function readBody<S extends v.GenericSchema>(c: Context, schema: S): Promise<v.InferOutput<S>> {
  let raw: string;
  try {
    raw = await c.req.text();
  } catch (cause) {
    throw new ApiError("bad_request", "server: the request body could not be read", { cause });
  }
  return parseBody(raw, schema);
}

/**
 * A request body's text checked against `schema`: 413 body_too_large over MAX_BODY_BYTES (UTF-8
 * bytes), 400 bad_request when it is not JSON or not the schema's shape. An empty body is `{}`.
 * Every route's body goes through here (./fast-svid-route.ts included), so they answer alike.
 */
export function parseBody<S extends v.GenericSchema>(raw: string, schema: S): v.InferOutput<S> {
  if (raw.length > MAX_BODY_BYTES || Buffer.byteLength(raw) > MAX_BODY_BYTES) throw bodyTooLarge();
  let json: unknown;
  try {
    json = raw === "" ? {} : JSON.parse(raw);
  } catch {
    throw new ApiError("bad_request", "server: the body is not JSON");
  }
  const r = v.safeParse(schema, json);
  if (!r.success) throw new ApiError("bad_request", `server: ${describe(r.issues[0])}`);
  return r.output;
}

export const bodyTooLarge = (): ApiError => new ApiError("body_too_large", `server: the body is over ${MAX_BODY_BYTES} bytes`);

/**
 * Every app's first guard on bodies: a declared Content-Length over MAX_BODY_BYTES is refused
 * before a byte is read, and a streamed body is cut off once it passes it, so no caller (the
 * public listener's included) can make the server buffer more. The connection is closed after
 * the 413, since the rest of the body was never read.
 */
export const limitBody = (): MiddlewareHandler =>
  bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: (c) => c.json(errorBody("body_too_large", bodyTooLarge().message), 413, { connection: "close" }),
  });

/** A base64 DER CSR; not base64 is csr_malformed like any other unreadable CSR. */
export function csrBytes(b64: string): Uint8Array {
  const der = fromBase64(b64);
  if (der === null || der.length === 0) throw new CsrError("csr_malformed", "csr: the csr field is not standard base64 of DER");
  return der;
}

export const chainJson = (chain: readonly Uint8Array[]): string[] => chain.map((d) => toBase64(d));

export interface EntryJson {
  id: string;
  spiffe_id: string;
  parent_id: string;
  selectors: string[];
  ttl_seconds: number;
  dns_names: string[];
  revision: number;
}

export function entryJson(e: RegistrationEntry): EntryJson {
  return {
    id: e.id,
    spiffe_id: e.spiffeId,
    parent_id: e.parentId,
    selectors: [...e.selectors],
    ttl_seconds: e.ttlSeconds,
    dns_names: [...e.dnsNames],
    revision: e.revision,
  };
}
