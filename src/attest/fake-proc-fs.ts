/**
 * An in-memory ProcFs for unit tests (never used outside them): files, links and stats by path,
 * and helpers that lay out a process the way the kernel shows it under /proc/PID.
 */
import { createHash } from "node:crypto";
import type { FileStat, HashedFile, ProcFs } from "./proc-fs.ts";

export interface FakeNode {
  text?: string;
  link?: string;
  stat?: Partial<FileStat>;
}

export interface FakeProcess {
  pid: number;
  startTime?: number;
  comm?: string;
  uids?: [number, number, number, number];
  gids?: [number, number, number, number];
  groups?: number[];
  exePath?: string;
  exeContent?: string;
  exeStat?: Partial<FileStat>;
  cgroup?: string;
  owner?: [number, number];
}

function gone(path: string): Error {
  return Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
}

export function fakeStat(s: Partial<FileStat> = {}): FileStat {
  return { dev: 1n, ino: 1n, size: 0n, mtimeNs: 0n, ctimeNs: 0n, nlink: 1, uid: 0, gid: 0, isDirectory: false, ...s };
}

export class FakeProcFs implements ProcFs {
  readonly nodes = new Map<string, FakeNode>();
  /** Paths read or hashed, in order. */
  readonly log: string[] = [];
  /** Called at each hashFile, before reading: tests change the world there. */
  onHash: ((path: string) => void) | undefined;
  /** Called at each readText: tests change the world there. */
  onRead: ((path: string) => void) | undefined;

  set(path: string, node: FakeNode): this {
    this.nodes.set(path, node);
    return this;
  }

  #get(path: string): FakeNode {
    const n = this.nodes.get(path);
    if (n === undefined) throw gone(path);
    return n;
  }

  async readText(path: string): Promise<string> {
    return this.readTextSync(path);
  }

  readTextSync(path: string): string {
    this.log.push(`read ${path}`);
    this.onRead?.(path);
    const t = this.#get(path).text;
    if (t === undefined) throw gone(path);
    return t;
  }

  readBytesSync(path: string, into: Uint8Array): number {
    const bytes = new TextEncoder().encode(this.readTextSync(path)).subarray(0, into.length);
    into.set(bytes);
    return bytes.length;
  }

  async readlink(path: string): Promise<string> {
    const l = this.#get(path).link;
    if (l === undefined) throw Object.assign(new Error(`EINVAL: ${path}`), { code: "EINVAL" });
    return l;
  }

  async stat(path: string): Promise<FileStat> {
    return fakeStat(this.#get(path).stat);
  }

  fileIdSync(path: string): string {
    const s = fakeStat(this.#get(path).stat);
    return `${s.dev}:${s.ino}`;
  }

  async owner(path: string): Promise<{ uid: number; gid: number }> {
    return this.ownerSync(path);
  }

  ownerSync(path: string): { uid: number; gid: number } {
    const s = fakeStat(this.#get(path).stat);
    return { uid: s.uid, gid: s.gid };
  }

  async hashFile(path: string): Promise<HashedFile> {
    this.log.push(`hash ${path}`);
    const before = fakeStat(this.#get(path).stat);
    this.onHash?.(path);
    const n = this.#get(path);
    const sha256 = createHash("sha256").update(n.text ?? "").digest("hex");
    return { sha256, before, after: fakeStat(n.stat) };
  }

  /** Lays out /proc/PID/{stat,status,exe,cgroup} and /proc/PID itself. */
  addProcess(p: FakeProcess): this {
    const base = `/proc/${p.pid}`;
    const st = p.startTime ?? 1000;
    const fields = ["S", "1", "1", "1", "0", "-1", "4194304", "0", "0", "0", "0", "0", "0", "0", "0", "20", "0", "1", "0", String(st), "1000", "100"];
    this.set(`${base}/stat`, { text: `${p.pid} (${p.comm ?? "proc"}) ${fields.join(" ")}\n` });
    const u = p.uids ?? [1000, 1000, 1000, 1000];
    const g = p.gids ?? [1000, 1000, 1000, 1000];
    this.set(`${base}/status`, {
      text: `Name:\t${p.comm ?? "proc"}\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t${u.join("\t")}\nGid:\t${g.join("\t")}\nFDSize:\t64\nGroups:\t${(p.groups ?? []).join(" ")} \nNStgid:\t${p.pid}\n`,
    });
    this.set(`${base}/exe`, { link: p.exePath ?? "/usr/bin/proc", text: p.exeContent ?? "binary", stat: { ino: 42n, ...p.exeStat } });
    this.set(`${base}/cgroup`, { text: `0::${p.cgroup ?? "/user.slice"}\n` });
    this.set(base, { stat: { isDirectory: true, uid: (p.owner ?? [u[1], g[1]])[0], gid: (p.owner ?? [u[1], g[1]])[1] } });
    return this;
  }

  removeProcess(pid: number): void {
    for (const k of [...this.nodes.keys()]) if (k === `/proc/${pid}` || k.startsWith(`/proc/${pid}/`)) this.nodes.delete(k);
  }
}
