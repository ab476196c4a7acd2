/**
 * What a writer starting on an existing log directory goes on from (audit-log.ts): the last
 * complete line's seq and hash, the lines since the last checkpoint, the active file opened for
 * appending. An active file that ends in a torn line (power lost mid-write) keeps its bytes under
 * a name of its own, never over another file: its first seq when a line of it is whole, else a
 * name readers do not list (it holds only a cut first line); `recovered` says which, for the
 * `audit_recovered` event that opens the next file.
 */
import { chmodSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, existsSync } from "node:fs";
import { join } from "node:path";
import { GENESIS_PREV } from "../format/index.ts";
import { ACTIVE_FILE, listLogFiles, readTail, rotatedName } from "./files.ts";

export interface Recovered {
  readonly fd: number;
  readonly size: number;
  readonly fileFirstSeq: number;
  readonly seq: number;
  readonly head: string;
  readonly since: number;
  readonly recovered: { readonly torn: number; readonly file: string } | null;
}

export function recoverChain(dir: string): Recovered {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const files = listLogFiles(dir);
  let seq = 0;
  let head = GENESIS_PREV;
  let since = 0;
  let torn: { torn: number; firstSeq: number | null } | null = null;
  const active = join(dir, ACTIVE_FILE);
  // Back through the files (newest first) until the last complete line and the last checkpoint.
  let haveLast = false;
  for (const f of [...files].reverse()) {
    const tail = readTail(f.path);
    if (f.name === ACTIVE_FILE && tail.tornBytes > 0) torn = { torn: tail.tornBytes, firstSeq: tail.lines.length > 0 ? f.firstSeq : null };
    const lines = tail.lines;
    if (!haveLast && lines.length > 0) {
      const last = lines[lines.length - 1]!;
      seq = Number(/^\{"seq":(\d+),/.exec(last)?.[1] ?? NaN);
      if (!Number.isSafeInteger(seq)) throw new Error(`audit: ${f.path}: the last line has no seq: the log is not tidegate's or is damaged (audit verify says more)`);
      head = new Bun.CryptoHasher("sha256").update(last).digest("hex");
      haveLast = true;
    }
    since += tail.sawCheckpoint ? lines.length - 1 : lines.length;
    if (tail.sawCheckpoint) break;
  }
  let recovered: { torn: number; file: string } | null = null;
  if (torn !== null) {
    let name = torn.firstSeq !== null ? rotatedName(torn.firstSeq) : `audit-torn-${String(seq + 1).padStart(12, "0")}-${Date.now()}.jsonl`;
    if (existsSync(join(dir, name))) name = `audit-torn-${String(seq + 1).padStart(12, "0")}-${Date.now()}.jsonl`;
    renameSync(active, join(dir, name));
    recovered = { torn: torn.torn, file: name };
  }
  const fd = openSync(active, "a", 0o600);
  const size = fstatSync(fd).size;
  return { fd, size, fileFirstSeq: size === 0 ? seq + 1 : (listLogFiles(dir).at(-1)?.firstSeq ?? seq + 1), seq, head, since, recovered };
}

/** The seq of the checkpoint a state file records, or null when there is none to read. */
export function readRecordedSeq(path: string): number | null {
  try {
    const seq = (JSON.parse(readFileSync(path, "utf8")) as { seq?: unknown }).seq;
    return typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0 ? seq : null;
  } catch {
    return null;
  }
}
