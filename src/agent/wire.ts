/**
 * The server's answers as the agent reads them (docs/server-api.md). Each is checked with valibot
 * before use; anything else is `server_bad_answer`. Unknown members are ignored, so the server may
 * add fields.
 */
import * as v from "valibot";
import { fromBase64 } from "../x509/encoding.ts";
import { AgentError } from "./errors.ts";

const chain = v.pipe(v.array(v.string()), v.minLength(1));
const jwks = v.looseObject({ keys: v.array(v.unknown()) });

export const EntrySchema = v.object({
  id: v.string(),
  spiffe_id: v.string(),
  parent_id: v.string(),
  selectors: v.array(v.string()),
  ttl_seconds: v.nullish(v.number()),
  dns_names: v.nullish(v.array(v.string())),
  revision: v.nullish(v.number()),
});
export type Entry = v.InferOutput<typeof EntrySchema>;

export const AttestAnswer = v.object({
  node: v.string(),
  spiffe_id: v.string(),
  svid: chain,
  bundle: jwks,
  api_port: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
});

export const RenewAnswer = v.object({ node: v.string(), spiffe_id: v.string(), svid: chain, bundle: jwks });

export const SyncAnswer = v.object({
  node: v.string(),
  entries: v.array(EntrySchema),
  bundle: jwks,
  bundle_sequence: v.nullish(v.number()),
  /** Federated trust domains' bundles (a server without federation, or an older one, sends none). */
  federated: v.nullish(v.array(v.object({ trust_domain: v.string(), bundle: jwks, expires_at: v.string() }))),
});

export const SvidAnswer = v.object({ entry_id: v.string(), spiffe_id: v.string(), svid: chain, expires_at: v.nullish(v.string()) });

export function readAnswer<S extends v.GenericSchema>(schema: S, body: unknown, what: string): v.InferOutput<S> {
  const r = v.safeParse(schema, body);
  if (!r.success) {
    const issue = r.issues[0];
    const where = issue?.path?.map((p) => String(p.key)).join(".") ?? "";
    throw new AgentError("server_bad_answer", `agent: the server's answer to ${what} is malformed${where ? ` at ${where}` : ""}: ${issue?.message ?? "?"}`);
  }
  return r.output;
}

/** Base64 DER certificates of an answer, leaf first. */
export function decodeChain(b64: readonly string[], what: string): Uint8Array[] {
  return b64.map((s, i) => {
    const der = fromBase64(s);
    if (der === null || der.length === 0) throw new AgentError("server_bad_answer", `agent: certificate ${i} of the answer to ${what} is not base64`);
    return der;
  });
}
