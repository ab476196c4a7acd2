/**
 * A rule's `ca` file, read once and again only when it changes on disk (device, inode, size,
 * mtime and ctime), with the SHA-256 of its text: the `tls` leg's trust and part of its session key.
 * Without it every connection of a `tls` or `intercept` rule read and hashed the file.
 */
import { stat } from "node:fs/promises";

export interface CaFile {
  readonly pem: string;
  /** SHA-256 of `pem`, hex. */
  readonly id: string;
}

const held = new Map<string, { stamp: string; ca: CaFile }>();

/** Throws the file system's error (with its `code`) when the file cannot be read. */
export async function readCaFile(path: string): Promise<CaFile> {
  const st = await stat(path);
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  const hit = held.get(path);
  if (hit !== undefined && hit.stamp === stamp) return hit.ca;
  const pem = await Bun.file(path).text();
  const ca = { pem, id: new Bun.CryptoHasher("sha256").update(pem).digest("hex") };
  held.set(path, { stamp, ca });
  return ca;
}
