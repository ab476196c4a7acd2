/**
 * What a writer starting on an existing log directory goes on from (audit-log.ts): the last
 * complete line's seq and hash, the lines since the last checkpoint and that checkpoint's time
 * (the next one is dated no earlier), the active file opened for appending. An active file that ends in a torn line (power lost mid-write) keeps its bytes under
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
  /** The time (ms) of the last checkpoint the files hold; null when they hold none. */
  readonly checkpointMs: number | null;
  readonly recovered: { readonly torn: number; readonly file: string } | null;
}

export function recoverChain(dir: string): Recovered {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const files = listLogFiles(dir);
  let seq = 0;
  let head = GENESIS_PREV;
  let since = 0;
  let checkpointMs: number | null = null;
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
    if (tail.sawCheckpoint) {
      checkpointMs = lineTimeMs(lines[0]!);
      break;
    }
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
  return { fd, size, fileFirstSeq: size === 0 ? seq + 1 : (listLogFiles(dir).at(-1)?.firstSeq ?? seq + 1), seq, head, since, checkpointMs, recovered };
}

/** The time of a line the writer wrote (its second field), in ms; null when it has none that parses. */
function lineTimeMs(line: string): number | null {
  const ms = Date.parse(/^\{"seq":\d+,"time":"([^"]+)"/.exec(line)?.[1] ?? "");
  return Number.isFinite(ms) ? ms : null;
}

/** The seq of the checkpoint a state file records and its time (ms, null when unreadable), or null when there is none to read. */
export function readRecorded(path: string): { seq: number; timeMs: number | null } | null {
  try {
    const { seq, time } = JSON.parse(readFileSync(path, "utf8")) as { seq?: unknown; time?: unknown };
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1) return null;
    const ms = typeof time === "string" ? Date.parse(time) : Number.NaN;
    return { seq, timeMs: Number.isFinite(ms) ? ms : null };
  } catch {
    return null;
  }
}
