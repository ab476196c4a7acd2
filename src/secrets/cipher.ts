/**
 * Sealing one value: AES-256-GCM (NIST SP 800-38D) with a fresh random 12-byte nonce per seal and
 * the secret's NAME (UTF-8) as additional authenticated data, so a ciphertext moved to another
 * name, a flipped bit anywhere, a truncated tag or another key fails to open
 * (`secret_decrypt_failed`). The tag is always 16 bytes; shorter ones are not accepted.
 *
 * Synchronous (node:crypto, not WebCrypto) so that `SecretStore.get` is, for the proxy's header
 * rendering. A random nonce per seal stays far below GCM's 2^32-messages-per-key bound for a store
 * changed by hand.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from "node:crypto";
import { NONCE_BYTES, TAG_BYTES, type SealedEntry } from "./format.ts";
import { SecretError } from "./errors.ts";

export const KEY_BYTES = 32;

/** The store's key from the key file's bytes (exactly 32); `path` names the file in errors. */
export function importKey(bytes: Uint8Array, path: string): KeyObject {
  if (bytes.length !== KEY_BYTES) throw new SecretError("secret_key_bad", `secrets: ${path} is ${bytes.length} bytes; a key is ${KEY_BYTES} random bytes`);
  return createSecretKey(bytes);
}

export function newKeyBytes(): Uint8Array {
  return new Uint8Array(randomBytes(KEY_BYTES));
}

export function seal(key: KeyObject, name: string, value: string, changedAt: string): SealedEntry {
  const nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  const c = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: TAG_BYTES });
  c.setAAD(Buffer.from(name, "utf8"));
  const ciphertext = new Uint8Array(Buffer.concat([c.update(value, "utf8"), c.final(), c.getAuthTag()]));
  return Object.freeze({ nonce, ciphertext, changedAt });
}

export function unseal(key: KeyObject, name: string, entry: SealedEntry, path: string): string {
  const body = entry.ciphertext.subarray(0, entry.ciphertext.length - TAG_BYTES);
  const tag = entry.ciphertext.subarray(entry.ciphertext.length - TAG_BYTES);
  try {
    const d = createDecipheriv("aes-256-gcm", key, entry.nonce, { authTagLength: TAG_BYTES });
    d.setAAD(Buffer.from(name, "utf8"));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(body), d.final()]).toString("utf8");
  } catch {
    // The cause (OpenSSL's "unable to authenticate data") adds nothing and is dropped.
    throw new SecretError(
      "secret_decrypt_failed",
      `secrets: ${name} in ${path} does not decrypt: the file was altered, the value was moved from another name, or the key file is not the one it was stored with`,
    );
  }
}
