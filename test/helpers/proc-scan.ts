/**
 * Searches a running process for secrets, for tests that claim a process never holds one.
 *
 * Guarantees, for each needle (at least 8 bytes, labels unique):
 * - every place it occurs in /proc/PID/environ, /proc/PID/cmdline, the target path of every open
 *   fd, and the first `maxFileBytes` of every regular file open on an fd (read through
 *   /proc/PID/fd/N, so deleted files and memfds count) is reported;
 * - so is every place in the process's readable memory: each `r` range of /proc/PID/maps read
 *   through /proc/PID/mem in chunks that overlap by (longest needle - 1) bytes, so nothing is missed
 *   at a chunk's edge. Pages of private anonymous ranges that /proc/PID/pagemap shows neither
 *   present nor swapped are never touched and read as zeros, so they are counted, not read (a Bun
 *   process maps gigabytes of such reservations). Ranges the kernel refuses (EIO, EFAULT: `[vvar]`
 *   and the like) are counted as skipped, with the reason;
 * - a scan is a snapshot of a quiescent process: it throws (process_gone) when the process exited
 *   or its pid was reused meanwhile, and (proc_unreadable) when /proc refuses it, never returning
 *   a report that silently read nothing. Found-places are kept up to `maxHitsPerNeedle` per needle;
 *   `counts` has them all.
 *
 * `keyNeedles` and `textNeedle` make needles for a PEM private key and for a text.
 */
import { parseStartTime } from "../../src/attest/proc-text.ts";
import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { TidegateError } from "../../src/errors.ts";

export type ProcScanErrorCode = "bad_pid" | "bad_needle" | "bad_key" | "bad_cgroup" | "process_gone" | "proc_unreadable";
export class ProcScanError extends TidegateError<ProcScanErrorCode> {}

export interface Needle {
  readonly label: string;
  readonly bytes: Uint8Array;
}

export type Source = "environ" | "cmdline" | "fd-path" | "fd-file" | "memory";

export interface Hit {
  readonly label: string;
  readonly source: Source;
  /** `environ`, `cmdline`, `fd N -> TARGET`, or for memory the range: `START-END PERMS PATH`. */
  readonly where: string;
  /** Byte offset in that source (for memory, in the range). */
  readonly offset: number;
  /** For memory: the address, hex. */
  readonly address?: string;
}

export interface FdEntry {
  readonly fd: number;
  readonly target: string;
  /** For a regular file: how many bytes of it were searched, and whether it is longer. */
  readonly bytesRead?: number;
  readonly truncated?: boolean;
  /** For a regular file that could not be opened or read: why. */
  readonly unreadable?: string;
}

export interface MemoryCounts {
  /** Readable ranges searched whole (never-touched pages included, see bytesUnpopulated). */
  readonly rangesRead: number;
  /** Readable ranges of which nothing could be read, and ranges read only in part. */
  readonly rangesSkipped: number;
  readonly rangesPartial: number;
  readonly bytesRead: number;
  /** Never-touched private anonymous pages, not read (they read as zeros). */
  readonly bytesUnpopulated: number;
  readonly skipped: readonly { readonly range: string; readonly reason: string }[];
}

export interface ScanReport {
  readonly pid: number;
  /** Every needle's label, with where it was found (empty when nowhere). */
  readonly found: Readonly<Record<string, readonly Hit[]>>;
  readonly counts: Readonly<Record<string, number>>;
  readonly fds: readonly FdEntry[];
  readonly memory: MemoryCounts;
}

export interface ScanOptions {
  /** Bytes read at a time (default 4 MiB). */
  readonly chunkBytes?: number;
  /** Bytes of each open regular file searched (default 64 MiB). */
  readonly maxFileBytes?: number;
  readonly maxHitsPerNeedle?: number;
}

/** Where needles are looked for, and where hits go. */
interface Search {
  readonly needles: readonly Needle[];
  readonly buf: Buffer;
  readonly chunk: number;
  readonly overlap: number;
  readonly maxHits: number;
  readonly found: Record<string, Hit[]>;
  readonly counts: Record<string, number>;
}

export function scanProcess(pid: number, needles: readonly Needle[], opts: ScanOptions = {}): ScanReport {
  if (!Number.isSafeInteger(pid) || pid < 1) throw new ProcScanError("bad_pid", `proc-scan: pid ${pid} is not a positive integer`);
  checkNeedles(needles);
  const started = startTime(pid);
  const search = newSearch(needles, opts);
  searchBytes(search, readProc(pid, "environ"), "environ");
  searchBytes(search, readProc(pid, "cmdline"), "cmdline");
  const fds = scanFds(pid, search, opts.maxFileBytes ?? 64 << 20);
  const memory = scanMemory(pid, search);
  if (startTime(pid) !== started) throw new ProcScanError("process_gone", `proc-scan: process ${pid} changed during the scan (exited, its pid reused)`);
  return { pid, found: search.found, counts: search.counts, fds, memory };
}

// ---- needles

/** The UTF-8 bytes of `text`, and its UTF-16LE bytes (how JS engines hold non-Latin-1 strings). */
export function textNeedle(label: string, text: string): Needle[] {
  return [
    { label, bytes: new TextEncoder().encode(text) },
    { label: `${label}: utf-16le`, bytes: new Uint8Array(Buffer.from(text, "utf16le")) },
  ];
}

/**
 * For a PEM private key ("PRIVATE KEY" (PKCS#8: EC, RSA, Ed25519, X25519, Ed448, X448),
 * "EC PRIVATE KEY", "RSA PRIVATE KEY"): its base64 body's first line and the body without line
 * ends, its DER, and the raw private value (EC and OKP: the private-key OCTET STRING; RSA: the
 * private exponent d) big-endian and little-endian (the order of bignum words in memory).
 * Encrypted keys and unknown algorithms are refused (bad_key).
 */
export function keyNeedles(label: string, pem: string): Needle[] {
  const { type, lines } = pemBlock(pem);
  const der = new Uint8Array(Buffer.from(lines.join(""), "base64"));
  const raw = rawPrivate(type, der);
  const enc = new TextEncoder();
  return [
    { label: `${label}: pem first line`, bytes: enc.encode(lines[0]!) },
    { label: `${label}: pem body`, bytes: enc.encode(lines.join("")) },
    { label: `${label}: der`, bytes: der },
    { label: `${label}: private value`, bytes: raw },
    { label: `${label}: private value, little-endian`, bytes: raw.slice().reverse() },
  ];
}

const PRIVATE_PEM = ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"];

/** The first private-key block of `pem` (others, such as EC PARAMETERS, are passed over). */
function pemBlock(pem: string): { type: string; lines: string[] } {
  const blocks = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)\r?\n-----END \1-----/g)];
  if (blocks.length === 0) throw new ProcScanError("bad_key", "proc-scan: no PEM block in the key text");
  const m = blocks.find((b) => PRIVATE_PEM.includes(b[1]!));
  if (m === undefined) throw new ProcScanError("bad_key", `proc-scan: PEM type ${blocks.map((b) => JSON.stringify(b[1])).join(", ")} is not an unencrypted private key`);
  const lines = m[2]!.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  if (lines.length === 0 || lines.some((l) => !/^[A-Za-z0-9+/=]+$/.test(l))) throw new ProcScanError("bad_key", `proc-scan: the ${m[1]} PEM body is not plain base64 (encrypted, or with headers)`);
  return { type: m[1]!, lines };
}

const OID_EC = "2a8648ce3d0201";
const OID_RSA = "2a864886f70d010101";
const OID_OKP = ["2b656e", "2b656f", "2b6570", "2b6571"]; // X25519, X448, Ed25519, Ed448 (RFC 8410)

function rawPrivate(type: string, der: Uint8Array): Uint8Array {
  if (type === "EC PRIVATE KEY") return ecPrivate(der);
  if (type === "RSA PRIVATE KEY") return rsaPrivate(der);
  // PKCS#8 PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, ... } (RFC 5958)
  const [, alg, key] = children(der, tlv(der, 0, der.length, 0x30));
  const oid = hex(der.subarray(...span(children(der, expectTag(alg, 0x30))[0], 0x06)));
  const inner = der.subarray(...span(key, 0x04));
  if (oid === OID_EC) return ecPrivate(inner);
  if (oid === OID_RSA) return rsaPrivate(inner);
  if (OID_OKP.includes(oid)) return inner.slice(...span(tlv(inner, 0, inner.length), 0x04));
  throw new ProcScanError("bad_key", `proc-scan: unsupported private key algorithm (OID ${oid})`);
}

/** ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, ... } (RFC 5915) */
function ecPrivate(der: Uint8Array): Uint8Array {
  return der.slice(...span(children(der, tlv(der, 0, der.length, 0x30))[1], 0x04));
}

/** RSAPrivateKey ::= SEQUENCE { version, n, e, d, ... } (RFC 8017 A.1.2); d without sign padding. */
function rsaPrivate(der: Uint8Array): Uint8Array {
  const [start, end] = span(children(der, tlv(der, 0, der.length, 0x30))[3], 0x02);
  return der.slice(der[start] === 0 && end - start > 1 ? start + 1 : start, end);
}

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

/** The DER element at `pos` (definite lengths up to 4 bytes, within `limit`). */
function tlv(der: Uint8Array, pos: number, limit: number, tag?: number): Tlv {
  const bad = (why: string) => new ProcScanError("bad_key", `proc-scan: key DER: ${why} at byte ${pos}`);
  if (pos + 2 > limit) throw bad("truncated element");
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw bad("bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  if (start + len > limit) throw bad("length past the end");
  const el = { tag: der[pos]!, start, end: start + len };
  return tag === undefined ? el : expectTag(el, tag);
}

function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let pos = parent.start; pos < parent.end; pos = out[out.length - 1]!.end) out.push(tlv(der, pos, parent.end));
  return out;
}

function expectTag(el: Tlv | undefined, tag: number): Tlv {
  if (el === undefined || el.tag !== tag) throw new ProcScanError("bad_key", `proc-scan: key DER: expected tag 0x${tag.toString(16)}, found ${el ? `0x${el.tag.toString(16)}` : "nothing"}`);
  return el;
}

function span(el: Tlv | undefined, tag: number): [number, number] {
  const e = expectTag(el, tag);
  return [e.start, e.end];
}

function checkNeedles(needles: readonly Needle[]): void {
  if (needles.length === 0) throw new ProcScanError("bad_needle", "proc-scan: no needles");
  const seen = new Set<string>();
  for (const n of needles) {
    if (seen.has(n.label)) throw new ProcScanError("bad_needle", `proc-scan: needle label ${JSON.stringify(n.label)} repeats`);
    if (n.bytes.length < 8) throw new ProcScanError("bad_needle", `proc-scan: needle ${JSON.stringify(n.label)} has ${n.bytes.length} bytes, fewer than 8 match by chance`);
    seen.add(n.label);
  }
}

// ---- searching

function newSearch(needles: readonly Needle[], opts: ScanOptions): Search {
  const chunk = opts.chunkBytes ?? 4 << 20;
  const overlap = Math.max(...needles.map((n) => n.bytes.length)) - 1;
  const found: Record<string, Hit[]> = {};
  const counts: Record<string, number> = {};
  for (const n of needles) {
    found[n.label] = [];
    counts[n.label] = 0;
  }
  return { needles, buf: Buffer.alloc(chunk + overlap), chunk, overlap, maxHits: opts.maxHitsPerNeedle ?? 100, found, counts };
}

type ReadAt = (buf: Buffer, offset: number, length: number, position: number) => number;

/**
 * Searches bytes [start, start + length) of a source, read `s.chunk` at a time with the last
 * `s.overlap` bytes carried over. Returns the bytes read and, when it stopped early, why: `eof` for
 * a read of nothing, the errno code for EIO/EFAULT. Any other error is thrown.
 */
function searchStream(s: Search, read: ReadAt, start: number, length: number, onHit: (n: Needle, position: number) => void): { bytes: number; stop?: string } {
  let tail = 0;
  let done = 0;
  while (done < length) {
    let n: number;
    try {
      n = read(s.buf, tail, Math.min(s.chunk, length - done), start + done);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "EIO" || code === "EFAULT") return { bytes: done, stop: code };
      throw e;
    }
    if (n === 0) return { bytes: done, stop: "eof" };
    const view = s.buf.subarray(0, tail + n);
    for (const needle of s.needles) {
      // A match starting earlier lies wholly in the carried tail: the previous chunk found it.
      for (let i = view.indexOf(needle.bytes, Math.max(0, tail - needle.bytes.length + 1)); i !== -1; i = view.indexOf(needle.bytes, i + 1)) {
        onHit(needle, start + done - tail + i);
      }
    }
    const keep = Math.min(s.overlap, view.length);
    s.buf.copyWithin(0, view.length - keep, view.length);
    tail = keep;
    done += n;
  }
  return { bytes: done };
}

function addHit(s: Search, hit: Hit): void {
  s.counts[hit.label]! += 1;
  const list = s.found[hit.label]!;
  if (list.length < s.maxHits) list.push(hit);
}

function searchBytes(s: Search, bytes: Buffer, source: Source, where: string = source): void {
  const read: ReadAt = (buf, offset, length, position) => bytes.copy(buf, offset, position, Math.min(bytes.length, position + length));
  searchStream(s, read, 0, bytes.length, (n, offset) => addHit(s, { label: n.label, source, where, offset }));
}

// ---- /proc

function procError(pid: number, what: string, e: unknown): ProcScanError {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ESRCH") return new ProcScanError("process_gone", `proc-scan: process ${pid} is gone (${what}: ${code})`, { cause: e });
  const hint = code === "EACCES" || code === "EPERM" ? ": another user's process needs root (CAP_SYS_PTRACE)" : "";
  return new ProcScanError("proc_unreadable", `proc-scan: cannot read /proc/${pid}/${what} (${code ?? String(e)})${hint}`, { cause: e });
}

function readProc(pid: number, what: string): Buffer {
  try {
    return readFileSync(`/proc/${pid}/${what}`);
  } catch (e) {
    throw procError(pid, what, e);
  }
}

/** Field 22 of /proc/PID/stat (the attestor's own parser): tells a process from a later one with the same pid. */
function startTime(pid: number): number {
  return parseStartTime(readProc(pid, "stat").toString("latin1"), `/proc/${pid}/stat`);
}

function scanFds(pid: number, s: Search, maxFileBytes: number): FdEntry[] {
  const dir = `/proc/${pid}/fd`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw procError(pid, "fd", e);
  }
  const entries: FdEntry[] = [];
  for (const fd of names.map(Number).sort((a, b) => a - b)) {
    const link = join(dir, String(fd));
    let target: string;
    try {
      target = readlinkSync(link);
    } catch {
      continue; // closed since the listing
    }
    const where = `fd ${fd} -> ${target}`;
    searchBytes(s, Buffer.from(target), "fd-path", where);
    entries.push({ fd, target, ...scanFile(s, link, where, maxFileBytes) });
  }
  return entries;
}

function scanFile(s: Search, link: string, where: string, maxBytes: number): Partial<FdEntry> {
  let fd: number | undefined;
  try {
    if (!statSync(link).isFile()) return {};
    fd = openSync(link, "r");
    const file = fd;
    const r = searchStream(s, (buf, off, len, pos) => readSync(file, buf, off, len, pos), 0, maxBytes, (n, offset) => addHit(s, { label: n.label, source: "fd-file", where, offset }));
    if (r.stop !== undefined && r.stop !== "eof") return { bytesRead: r.bytes, unreadable: `${r.stop} at byte ${r.bytes}` };
    return { bytesRead: r.bytes, truncated: r.bytes === maxBytes };
  } catch (e) {
    return { unreadable: (e as NodeJS.ErrnoException).code ?? String(e) };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

interface Range {
  readonly start: number;
  readonly end: number;
  readonly perms: string;
  readonly path: string;
  readonly line: string;
}

function parseMaps(text: string): Range[] {
  return text.split("\n").flatMap((line) => {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m === null) return [];
    const [start, end] = [Number.parseInt(m[1]!, 16), Number.parseInt(m[2]!, 16)];
    return [{ start, end, perms: m[3]!, path: m[4]!, line: `${m[1]}-${m[2]} ${m[3]} ${m[4]}`.trim() }];
  });
}

/** Private anonymous memory: its never-touched pages hold zeros, nothing else can be there. */
function isPrivateAnon(r: Range): boolean {
  return r.perms[3] === "p" && (r.path === "" || r.path === "[heap]" || r.path.startsWith("[stack") || r.path.startsWith("[anon:"));
}

interface MemoryCountsBuilder {
  rangesRead: number;
  rangesSkipped: number;
  rangesPartial: number;
  bytesRead: number;
  bytesUnpopulated: number;
  skipped: { range: string; reason: string }[];
}

function scanMemory(pid: number, s: Search): MemoryCounts {
  const ranges = parseMaps(readProc(pid, "maps").toString("latin1")).filter((r) => r.perms[0] === "r");
  const fds = { mem: openProc(pid, "mem"), pagemap: openProc(pid, "pagemap") };
  const c: MemoryCountsBuilder = { rangesRead: 0, rangesSkipped: 0, rangesPartial: 0, bytesRead: 0, bytesUnpopulated: 0, skipped: [] };
  try {
    for (const r of ranges) {
      const got = r.end > Number.MAX_SAFE_INTEGER ? { read: 0, unpopulated: 0, stops: ["above the offsets readSync takes"] } : scanRange(pid, s, fds, r);
      c.bytesRead += got.read;
      c.bytesUnpopulated += got.unpopulated;
      if (got.stops.length === 0) c.rangesRead++;
      else if (got.read === 0) c.rangesSkipped++;
      else c.rangesPartial++;
      if (got.stops.length > 0) c.skipped.push({ range: r.line, reason: `${got.read === 0 ? "unreadable" : `read ${got.read} bytes, then`} ${got.stops.join(", ")}` });
    }
  } catch (e) {
    throw e instanceof ProcScanError ? e : procError(pid, "mem", e);
  } finally {
    closeSync(fds.mem);
    closeSync(fds.pagemap);
  }
  return c;
}

/** Searches one range: private anonymous ones only where pages are in use. */
function scanRange(pid: number, s: Search, fds: { mem: number; pagemap: number }, r: Range): { read: number; unpopulated: number; stops: string[] } {
  const segments = isPrivateAnon(r) ? populated(fds.pagemap, r, pageSize()) : [[r.start, r.end] as const];
  if (r.path === "[stack]" && segments.length === 0) {
    throw new ProcScanError("proc_unreadable", `proc-scan: /proc/${pid}/pagemap shows no page of [stack] in use, so it cannot tell used memory from untouched`);
  }
  let read = 0;
  const stops: string[] = [];
  const readMem: ReadAt = (buf, off, len, pos) => readSync(fds.mem, buf, off, len, pos);
  for (const [start, end] of segments) {
    const got = searchStream(s, readMem, start, end - start, (n, pos) =>
      addHit(s, { label: n.label, source: "memory", where: r.line, offset: pos - r.start, address: pos.toString(16) }),
    );
    read += got.bytes;
    if (got.stop !== undefined) stops.push(`${got.stop} at +0x${(start + got.bytes - r.start).toString(16)}`);
  }
  const unpopulated = r.end - r.start - segments.reduce((sum, [a, b]) => sum + (b - a), 0);
  return { read, unpopulated, stops };
}

function openProc(pid: number, what: string): number {
  try {
    return openSync(`/proc/${pid}/${what}`, "r");
  } catch (e) {
    throw procError(pid, what, e);
  }
}

/**
 * The runs of `r`'s pages that /proc/PID/pagemap shows present or swapped (bits 63 and 62 of each
 * 8-byte entry, readable without privilege; Documentation/admin-guide/mm/pagemap.rst).
 */
function populated(pagemap: number, r: Range, page: number): (readonly [number, number])[] {
  const runs: [number, number][] = [];
  const batch = Buffer.alloc(8 * Math.min(1 << 20, (r.end - r.start) / page));
  for (let at = r.start; at < r.end; ) {
    const want = Math.min(batch.length, ((r.end - at) / page) * 8);
    const got = readSync(pagemap, batch, 0, want, (at / page) * 8);
    if (got !== want) throw new ProcScanError("proc_unreadable", `proc-scan: /proc/PID/pagemap gave ${got} of ${want} bytes for ${r.line}`);
    for (let i = 0; i < got; i += 8, at += page) {
      if ((batch[i + 7]! & 0xc0) === 0) continue;
      const last = runs[runs.length - 1];
      if (last !== undefined && last[1] === at) last[1] = at + page;
      else runs.push([at, at + page]);
    }
  }
  return runs;
}

let cachedPageSize: number | undefined;

/** AT_PAGESZ (6) from our own auxiliary vector (64-bit little-endian pairs). */
function pageSize(): number {
  if (cachedPageSize !== undefined) return cachedPageSize;
  const auxv = readFileSync("/proc/self/auxv");
  for (let i = 0; i + 16 <= auxv.length; i += 16) {
    if (auxv.readBigUInt64LE(i) === 6n) return (cachedPageSize = Number(auxv.readBigUInt64LE(i + 8)));
  }
  throw new ProcScanError("proc_unreadable", "proc-scan: no AT_PAGESZ in /proc/self/auxv");
}

// ---- many processes

/** `rootPid` and all its descendants (by the parent pid in /proc/N/stat), root first. */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "latin1");
    } catch {
      continue; // exited since the listing
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
  }
  const out = [rootPid];
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []));
  return out;
}

/** The pids in `cgroupDir`'s cgroup.procs and in those of every cgroup below it. */
export function pidsOfCgroup(cgroupDir: string): number[] {
  let text: string;
  try {
    text = readFileSync(join(cgroupDir, "cgroup.procs"), "utf8");
  } catch (e) {
    throw new ProcScanError("bad_cgroup", `proc-scan: cannot read ${join(cgroupDir, "cgroup.procs")} (${(e as NodeJS.ErrnoException).code})`, { cause: e });
  }
  const pids = text.split("\n").filter((l) => l !== "").map(Number);
  const subs = readdirSync(cgroupDir, { withFileTypes: true }).filter((d) => d.isDirectory());
  return [...pids, ...subs.flatMap((d) => pidsOfCgroup(join(cgroupDir, d.name)))].sort((a, b) => a - b);
}

/** Scans each pid; a process that exits before or during its scan is listed in `gone`. */
export function scanPids(pids: readonly number[], needles: readonly Needle[], opts: ScanOptions = {}): { reports: ScanReport[]; gone: number[] } {
  const reports: ScanReport[] = [];
  const gone: number[] = [];
  for (const pid of pids) {
    try {
      reports.push(scanProcess(pid, needles, opts));
    } catch (e) {
      if (!(e instanceof ProcScanError && e.code === "process_gone")) throw e;
      gone.push(pid);
    }
  }
  return { reports, gone };
}

/** Every hit of every report, one line each, for failure messages and logs. */
export function describeHits(reports: readonly ScanReport[]): string[] {
  return reports.flatMap((r) =>
    Object.values(r.found).flatMap((hits) => hits.map((h) => `pid ${r.pid}: ${h.label} in ${h.source} (${h.where}) at +${h.offset}${h.address ? ` (0x${h.address})` : ""}`)),
  );
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}
