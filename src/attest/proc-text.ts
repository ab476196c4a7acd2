/**
 * Parsers for the /proc files attestation reads (proc(5)). They take the text the kernel wrote and
 * reject anything of another shape with `attest_bad_proc`, naming the file.
 */
import { quote } from "../errors.ts";
import { AttestError } from "./errors.ts";

const DIGITS = /^[0-9]{1,20}$/;

function bad(what: string, detail: string): never {
  throw new AttestError("attest_bad_proc", `attest: ${what}: ${detail}`);
}

/**
 * The start time of a process (field 22 of /proc/PID/stat, clock ticks after boot). Field 2, comm,
 * is in parentheses and may itself hold spaces and ")" (a process names itself), so the fields are
 * counted from the text after the LAST ")": that text starts with field 3 (state), so the start
 * time is its 20th field. A number, not a bigint: 2^53 ticks at 100 Hz is millions of years.
 */
export function parseStartTime(stat: string, what = "stat"): number {
  const close = stat.lastIndexOf(")");
  if (close < 0 || stat.indexOf("(") < 0) bad(what, "no (comm) field");
  // fields[19] of rest.split(/ +/), found by a scan: it runs on every cached attestation, and the
  // split made some fifty strings each time (the fuzz test holds the two equal)
  const rest = stat.slice(close + 1).trim();
  let start = 0;
  for (let field = 0; field < 19 && start >= 0; field++) {
    const sp = rest.indexOf(" ", start);
    start = sp;
    if (sp >= 0) while (rest.charCodeAt(start) === 32) start++;
  }
  let v: string | undefined;
  if (start >= 0) {
    const end = rest.indexOf(" ", start);
    v = rest.slice(start, end < 0 ? rest.length : end);
  }
  if (v === undefined || !DIGITS.test(v)) bad(what, `field 22 is ${v === undefined ? "missing" : quote(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n)) bad(what, `field 22 ${quote(v)} is out of range`);
  return n;
}

/** /proc shows a process's times in USER_HZ clock ticks: 100 a second on every Linux ABI. */
const NS_PER_TICK = 10_000_000n;

/**
 * A start time the kernel gave in nanoseconds after boot (a task's start_boottime) as /proc/PID/stat
 * field 22 shows it to a reader whose time namespace moves boot time by `bootOffsetNs`: clock ticks,
 * rounded down as the kernel rounds. null for 0 (not known) or a negative sum.
 */
export function startTicks(startNs: bigint, bootOffsetNs = 0n): number | null {
  if (startNs <= 0n) return null;
  const ns = startNs + bootOffsetNs;
  return ns < 0n ? null : Number(ns / NS_PER_TICK);
}

/**
 * The boot-time offset, in nanoseconds, of /proc/self/timens_offsets (time_namespaces(7): lines
 * `<clock> <seconds> <nanoseconds>`): what /proc adds to start times for a process in a time
 * namespace. A file without a boottime line is an offset of 0; any other shape is `attest_bad_proc`.
 */
export function parseBootOffset(text: string, what = "timens_offsets"): bigint {
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f[0] !== "boottime" && f[0] !== "7") continue; // by name, or CLOCK_BOOTTIME's number
    if (f.length !== 3 || !/^-?[0-9]{1,19}$/.test(f[1]!) || !/^[0-9]{1,9}$/.test(f[2]!)) bad(what, `boottime line ${quote(line)}`);
    return BigInt(f[1]!) * 1_000_000_000n + BigInt(f[2]!);
  }
  return 0n;
}

/**
 * parseStartTime on the bytes of /proc/PID/stat as read (`n` of them), without making a string:
 * a cached attestation reads it on every connection. Only the shape the kernel writes is taken
 * here: after the last ")", fields of printable ASCII separated by spaces, field 22 of 1 to 15
 * digits followed by a space. For anything else it returns -1 and the caller decodes the text for
 * parseStartTime, which gives the answer or the error (the fuzz test holds the two equal).
 */
export function startTimeFromBytes(b: Uint8Array, n: number): number {
  let close = n - 1;
  while (close >= 0 && b[close] !== 0x29) close--;
  if (close < 0) return -1;
  let open = 0;
  while (open < close && b[open] !== 0x28) open++;
  if (open === close) return -1;
  let i = close + 1;
  while (i < n && b[i] === 0x20) i++;
  for (let field = 0; field < 19; field++) {
    const from = i;
    while (i < n && b[i]! > 0x20 && b[i]! < 0x7f) i++;
    if (i === from || i === n || b[i] !== 0x20) return -1;
    while (i < n && b[i] === 0x20) i++;
  }
  let v = 0;
  const from = i;
  while (i < n && b[i]! >= 0x30 && b[i]! <= 0x39) v = v * 10 + (b[i++]! - 0x30);
  if (i === from || i - from > 15 || i === n || b[i] !== 0x20) return -1;
  return v;
}

/** The credentials in /proc/PID/status: Uid and Gid are "real effective saved filesystem". */
export interface ProcCredentials {
  readonly uids: readonly [number, number, number, number];
  readonly gids: readonly [number, number, number, number];
  /** The supplementary groups (the "Groups:" line; may be empty). */
  readonly groups: readonly number[];
}

function ids(line: string | undefined, name: string, what: string, count?: number): number[] {
  if (line === undefined) bad(what, `no ${name} line`);
  const parts = line.trim() === "" ? [] : line.trim().split(/\s+/);
  if (count !== undefined && parts.length !== count) bad(what, `${name} has ${parts.length} fields, not ${count}`);
  return parts.map((p) => {
    if (!DIGITS.test(p) || Number(p) > 0xffffffff) bad(what, `${name} holds ${quote(p)}`);
    return Number(p);
  });
}

export function parseStatus(status: string, what = "status"): ProcCredentials {
  const lines = new Map<string, string>();
  for (const line of status.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      const key = line.slice(0, colon);
      if (key === "Uid" || key === "Gid" || key === "Groups") lines.set(key, line.slice(colon + 1));
    }
  }
  const uids = ids(lines.get("Uid"), "Uid", what, 4) as [number, number, number, number];
  const gids = ids(lines.get("Gid"), "Gid", what, 4) as [number, number, number, number];
  return { uids, gids, groups: ids(lines.get("Groups"), "Groups", what) };
}

/**
 * The cgroup v2 path of a process: the "0::PATH" line of /proc/PID/cgroup (cgroups(7)); null when
 * there is none (a v1-only host). The path is relative to the reader's cgroup namespace: the agent
 * reads it from the host's.
 */
export function parseCgroupV2(text: string, what = "cgroup"): string | null {
  for (const line of text.split("\n")) {
    if (line.startsWith("0::")) {
      const path = line.slice(3);
      if (!path.startsWith("/")) bad(what, `cgroup v2 path ${quote(path)} is not absolute`);
      return path;
    }
  }
  return null;
}
