/**
 * One audit file cut into its lines, each with the SHA-256 of its bytes, for verifyAudit.
 *
 * A file given as bytes is cut at each 0x0A and each line is decoded as strict UTF-8: a line
 * that is not (the writer never writes one) gets `text: null`, for the verifier to reject. A file
 * given as text is cut at each "\n" and hashed as its UTF-8 encoding; a torn line's byte count is
 * then that of its text, which differs from the file's when the tear split a multi-byte
 * character, so callers that read files should give bytes. The bytes after the last "\n" (when
 * any) are the torn line: not hashed, counted in bytes.
 */
import { subtle } from "../../x509/engine.ts";

export interface SplitLine {
  /** The line without its "\n"; null when its bytes are not UTF-8. */
  readonly text: string | null;
  readonly hash: string;
}

export interface SplitFile {
  readonly lines: SplitLine[];
  /** The bytes after the last "\n", or null when the file ends with one (or is empty). */
  readonly torn: { readonly bytes: number } | null;
}

const encoder = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Digests computed at once: enough to keep the engine busy, few enough to bound memory. */
const BATCH = 2048;

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Lowercase hex by table: ten times the speed of a map-and-join, which shows at 10^5 lines. */
export function hex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]!]!;
  return s;
}

async function hashAll(chunks: Uint8Array[]): Promise<string[]> {
  const out: string[] = new Array<string>(chunks.length);
  for (let i = 0; i < chunks.length; i += BATCH) {
    const part = chunks.slice(i, i + BATCH);
    const digests = await Promise.all(part.map((c) => subtle.digest("SHA-256", c as Uint8Array<ArrayBuffer>)));
    digests.forEach((d, j) => (out[i + j] = hex(new Uint8Array(d))));
  }
  return out;
}

function decode(bytes: Uint8Array): string | null {
  try {
    return strict.decode(bytes);
  } catch {
    return null;
  }
}

export async function splitFile(content: string | Uint8Array): Promise<SplitFile> {
  const texts: (string | null)[] = [];
  const chunks: Uint8Array[] = [];
  let torn: { bytes: number } | null = null;
  if (typeof content === "string") {
    const parts = content.split("\n");
    const last = parts.pop()!;
    if (last !== "") torn = { bytes: encoder.encode(last).length };
    for (const p of parts) {
      texts.push(p);
      chunks.push(encoder.encode(p));
    }
  } else {
    let start = 0;
    for (;;) {
      const nl = content.indexOf(0x0a, start);
      if (nl < 0) break;
      const line = content.subarray(start, nl);
      texts.push(decode(line));
      chunks.push(line);
      start = nl + 1;
    }
    if (start < content.length) torn = { bytes: content.length - start };
  }
  const hashes = await hashAll(chunks);
  return { lines: texts.map((text, i) => ({ text, hash: hashes[i]! })), torn };
}
