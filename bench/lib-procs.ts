/**
 * The long-running children of bench/mtls.ts and what is left of an earlier run. Each run works in
 * its own folder `/tmp/tidegate-test-mtls-PID-*` and records there every child it starts (pid and
 * start time), so a run that was killed can be cleaned up by the next one: a child is stopped only
 * if that pid is still the process that started then (never by name), then the run's tidegate
 * instances are uninstalled and its folder removed.
 */
import { appendFileSync, existsSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export const RUN_PREFIX = "tidegate-test-mtls-";

export interface Child {
  readonly name: string;
  readonly proc: Subprocess<"ignore", number, number>;
  readonly log: string;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Field 22 of /proc/PID/stat (clock ticks after boot): with the pid, names one process. */
function startTime(pid: number): string | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

export class Procs {
  readonly dir: string;
  readonly children = new Map<string, Child>();

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), `${RUN_PREFIX}${process.pid}-`));
  }

  /** Starts `argv` as `name`, stdout and stderr to `<dir>/<name>.log`, recorded for a later run's cleanup. */
  start(name: string, argv: string[], env: Record<string, string> = {}): Child {
    const log = join(this.dir, `${name}.log`);
    const fd = openSync(log, "a");
    const proc = Bun.spawn(argv, { stdin: "ignore", stdout: fd, stderr: fd, cwd: "/", env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env } });
    closeSync(fd);
    appendFileSync(join(this.dir, "pids"), `${proc.pid} ${startTime(proc.pid)} ${name}\n`);
    const c = { name, proc, log };
    this.children.set(name, c);
    return c;
  }

  /** SIGTERM, then SIGKILL after `ms`. */
  async stop(name: string, ms = 5000): Promise<void> {
    const c = this.children.get(name);
    if (c === undefined) return;
    this.children.delete(name);
    if (c.proc.exitCode !== null || c.proc.signalCode !== null) return;
    c.proc.kill("SIGTERM");
    const timer = setTimeout(() => c.proc.kill("SIGKILL"), ms);
    await c.proc.exited;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.children.keys()].map((n) => this.stop(n)));
  }

  output(name: string): string {
    const c = this.children.get(name);
    return c === undefined || !existsSync(c.log) ? "" : readFileSync(c.log, "utf8");
  }

  /** Fails with the child's log when it has exited. */
  check(name: string): void {
    const c = this.children.get(name);
    if (c !== undefined && (c.proc.exitCode !== null || c.proc.signalCode !== null)) {
      throw new Error(`bench: ${name} exited (${c.proc.exitCode ?? c.proc.signalCode}); its log:\n${this.output(name).slice(-3000)}`);
    }
  }
}

/**
 * Folders of earlier runs whose process is gone: their recorded children still running the same
 * command line are killed, `uninstall(pid)` removes their instances, the folder goes.
 */
export async function removeLeftoverRuns(uninstall: (pid: number) => Promise<void>): Promise<string[]> {
  const removed: string[] = [];
  for (const d of readdirSync(tmpdir())) {
    const m = new RegExp(`^${RUN_PREFIX}(\\d+)-`).exec(d);
    if (m === null || alive(Number(m[1]))) continue;
    const dir = join(tmpdir(), d);
    const recorded = (existsSync(join(dir, "pids")) ? readFileSync(join(dir, "pids"), "utf8") : "").split("\n").map((l) => l.split(" "));
    const same = ([pid, start]: string[]) => pid !== undefined && pid !== "" && start !== "null" && startTime(Number(pid)) === start;
    const signal = (sig: NodeJS.Signals) => {
      for (const r of recorded.filter(same)) {
        try {
          process.kill(Number(r[0]), sig);
        } catch {
          // gone meanwhile
        }
      }
    };
    signal("SIGTERM");
    for (let i = 0; i < 50 && recorded.some(same); i++) await Bun.sleep(100);
    signal("SIGKILL");
    await uninstall(Number(m[1]));
    rmSync(dir, { recursive: true, force: true });
    removed.push(d);
  }
  return removed;
}

/** Waits until `host:port` accepts a TCP connection, or fails after `ms`. */
export async function waitListening(host: string, port: number, what: string, ms = 10_000, watch?: () => void): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    watch?.();
    const ok = await new Promise<boolean>((res) => {
      Bun.connect({ hostname: host, port, socket: { open: (s) => void (s.end(), res(true)), connectError: () => res(false), data() {} } }).catch(() => res(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`bench: ${what} does not listen on ${host}:${port} after ${ms} ms`);
    await Bun.sleep(50);
  }
}
