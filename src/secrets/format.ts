/**
 * `secrets.json`, the store's one data file (docs/secrets.md):
 *
 *   { "version": 1,
 *     "secrets": { "NAME": { "nonce": B64, "ciphertext": B64, "changed_at": ISO-8601 }, ... } }
 *
 * `nonce` is 12 bytes; `ciphertext` is the AES-256-GCM output with its 16-byte tag appended (the
 * WebCrypto layout), so at least 17 bytes for a non-empty value. Parsing is strict: another
 * version, a missing or extra field, a name that is not a secret name, base64 that is not
 * canonical (RFC 4648 section 4, padded) or a wrong size is `secret_store_corrupt` naming the file
 * and the field, never a value (the file holds none in clear).
 */
import { MAX_SECRET_BYTES } from "./value.ts";
import { SecretError } from "./errors.ts";

export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

export interface SealedEntry {
  readonly nonce: Uint8Array;
  /** Encrypted value followed by the GCM tag. */
  readonly ciphertext: Uint8Array;
  /** When the value was last set, ISO 8601 UTC. */
  readonly changedAt: string;
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function base64(text: unknown): Uint8Array | null {
  if (typeof text !== "string" || !B64.test(text)) return null;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? new Uint8Array(bytes) : null;
}

export function parseSecretsFile(text: string, path: string): Map<string, SealedEntry> {
  const corrupt = (why: string) => new SecretError("secret_store_corrupt", `secrets: ${path}: ${why}`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw corrupt("not JSON");
  }
  if (!isObject(doc)) throw corrupt("not a JSON object");
  if (doc.version !== 1) throw corrupt(`version ${JSON.stringify(doc.version ?? null)?.slice(0, 20)}, this tidegate reads version 1`);
  const extra = Object.keys(doc).find((k) => k !== "version" && k !== "secrets");
  if (extra !== undefined) throw corrupt("unknown top-level field");
  if (!isObject(doc.secrets)) throw corrupt('"secrets" is not an object');
  const out = new Map<string, SealedEntry>();
  for (const [name, entry] of Object.entries(doc.secrets)) {
    if (!NAME.test(name)) throw corrupt("an entry's key is not a secret name");
    const field = (f: string) => `secrets.${name}.${f}`;
    if (!isObject(entry)) throw corrupt(`secrets.${name} is not an object`);
    const keys = Object.keys(entry).sort().join(",");
    if (keys !== "changed_at,ciphertext,nonce") throw corrupt(`secrets.${name} must have exactly nonce, ciphertext and changed_at`);
    const nonce = base64(entry.nonce);
    if (nonce === null || nonce.length !== NONCE_BYTES) throw corrupt(`${field("nonce")} is not ${NONCE_BYTES} bytes of base64`);
    const ciphertext = base64(entry.ciphertext);
    if (ciphertext === null || ciphertext.length <= TAG_BYTES || ciphertext.length > MAX_SECRET_BYTES + TAG_BYTES) {
      throw corrupt(`${field("ciphertext")} is not ${TAG_BYTES + 1} to ${MAX_SECRET_BYTES + TAG_BYTES} bytes of base64`);
    }
    const changedAt = entry.changed_at;
    if (typeof changedAt !== "string" || !ISO.test(changedAt) || Number.isNaN(Date.parse(changedAt))) {
      throw corrupt(`${field("changed_at")} is not an ISO 8601 UTC time`);
    }
    out.set(name, Object.freeze({ nonce, ciphertext, changedAt }));
  }
  return out;
}

/** The file's text: names sorted, two-space indent, a final newline. */
export function serializeSecretsFile(entries: ReadonlyMap<string, SealedEntry>): string {
  const secrets = Object.fromEntries(
    [...entries.keys()].sort().map((name) => {
      const e = entries.get(name)!;
      return [name, { nonce: Buffer.from(e.nonce).toString("base64"), ciphertext: Buffer.from(e.ciphertext).toString("base64"), changed_at: e.changedAt }];
    }),
  );
  return JSON.stringify({ version: 1, secrets }, null, 2) + "\n";
}
