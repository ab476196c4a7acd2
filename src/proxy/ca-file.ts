/**
 * A rule's `ca` file, read once and again only when it changes on disk (device, inode, size,
 * mtime and ctime), with the SHA-256 of its text: the `tls` leg's trust and part of its session key.
 * Without it every connection of a `tls` or `intercept` rule read and hashed the file.
 *
 * The file's identity is looked at (a stat(2), synchronous) at most once per CA_RECHECK_MS per
 * path: an intercepted request asks on every request, and an asynchronous stat each time (a trip
 * through the thread pool) was about a third of the intercepting proxy's CPU per request. So a
 * replaced CA file is used, and a removed one refused, within a second.
 *
 * The path may be where others can put a file: it is read through src/runtime/bounded-read.ts,
 * so a FIFO or a device there is refused at once instead of stalling the agent's event loop.
 */
import { statSync } from "node:fs";
import { readRegularText } from "../runtime/bounded-read.ts";

export interface CaFile {
  readonly pem: string;
  /** SHA-256 of `pem`, hex. */
  readonly id: string;
}

export const CA_RECHECK_MS = 1000;

/** A bundle of CAs is text of a few KiB: a larger file is refused (ca_unreadable), never read whole. */
export const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

const held = new Map<string, { stamp: string; ca: CaFile; checkedAt: number }>();

/**
 * Throws the file system's error (with its `code`) when the file cannot be read, `input_not_file`
 * for anything but a regular file (a FIFO is never waited on), `input_too_large` over
 * MAX_CA_FILE_BYTES. `nowMs`: the clock of CA_RECHECK_MS.
 */
export function readCaFile(path: string, nowMs: number = performance.now()): CaFile {
  const hit = held.get(path);
  if (hit !== undefined && nowMs - hit.checkedAt < CA_RECHECK_MS && nowMs >= hit.checkedAt) return hit.ca;
  const st = statSync(path);
  const stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  if (hit !== undefined && hit.stamp === stamp) {
    hit.checkedAt = nowMs;
    return hit.ca;
  }
  const pem = readRegularText(path, "ca file", MAX_CA_FILE_BYTES);
  const ca = { pem, id: new Bun.CryptoHasher("sha256").update(pem).digest("hex") };
  held.set(path, { stamp, ca, checkedAt: nowMs });
  return ca;
}
