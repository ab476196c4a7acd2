// tg_task_print on the real kernel (root; CI runs it): the print of a process equals what /proc
// says of it (start time, executable, effective ids), an exec changes it, and a kernel thread,
// an exited process not yet reaped and a pid with no process have none.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, realpathSync, statSync } from "node:fs";
import { parseStartTime } from "../attest/proc-text.ts";
import { BpfError } from "./errors.ts";
import { TaskPrinter } from "./task-print.ts";
import { openKernelPrint } from "../agent/kernel-print.ts";
import { errorOf } from "../../test/shim.ts";

const root = process.getuid?.() === 0;
if (!root && !process.env.CI) console.warn("task-print.test: skipped (needs root to load eBPF programs)");

/** stat(2)'s st_dev (glibc's encoding) as the kernel's dev_t (major << 20 | minor). */
function kernelDev(dev: number): number {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 4096) & ~0xff & 0xfffff);
  return major * 2 ** 20 + minor;
}

/** What /proc says of `pid`, in the print's formats. */
function fromProc(pid: number): { startTime: number; exe: string; owner: string } {
  const stat = statSync(`/proc/${pid}/exe`, { bigint: true });
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const ids = (line: string) => new RegExp(`^${line}:\\s+(\\d+)\\s+(\\d+)`, "m").exec(status)![2];
  return {
    startTime: parseStartTime(readFileSync(`/proc/${pid}/stat`, "utf8")),
    exe: `k${kernelDev(Number(stat.dev))}:${Number(stat.ino >> 32n)}:${Number(stat.ino & 0xffffffffn)}`,
    owner: `${ids("Uid")}:${ids("Gid")}`,
  };
}

/** A python3 child running `code`, which prints lines the test waits for. */
function child(code: string) {
  const p = Bun.spawn(["python3", "-u", "-c", code], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = p.stdout.getReader();
  let buffered = "";
  return {
    proc: p,
    async line(): Promise<string> {
      while (!buffered.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the child exited");
        buffered += new TextDecoder().decode(value);
      }
      const i = buffered.indexOf("\n");
      const l = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      return l;
    },
    say(text: string): void {
      p.stdin.write(`${text}\n`);
      p.stdin.flush();
    },
  };
}

describe.skipIf(!root)("tg_task_print on the real kernel", () => {
  let printer: TaskPrinter;
  beforeAll(async () => {
    printer = await TaskPrinter.open();
  });
  afterAll(() => printer?.close());

  test("this process: the start time of /proc/PID/stat, the inode of /proc/PID/exe, the effective ids of /proc/PID/status", () => {
    expect(printer.print(process.pid)).toEqual(fromProc(process.pid));
  });

  test("a process of another user and executable: its own start time, inode and ids", async () => {
    const c = child("import os,sys\nos.setgroups([])\nos.setresgid(65534,65534,65534)\nos.setresuid(65534,65534,65534)\nprint('ready')\nsys.stdin.readline()");
    try {
      expect(await c.line()).toBe("ready");
      const got = printer.print(c.proc.pid);
      expect(got).toEqual(fromProc(c.proc.pid));
      expect(got!.owner).toBe("65534:65534");
      expect(got!.exe).not.toBe(printer.print(process.pid)!.exe);
    } finally {
      c.proc.kill();
      await c.proc.exited;
    }
  });

  test("an exec changes the executable and keeps the start time", async () => {
    const sleep = realpathSync(Bun.which("sleep")!);
    const c = child(`import os,sys\nprint('ready')\nsys.stdin.readline()\nos.execv('${sleep}', ['sleep', '30'])`);
    try {
      expect(await c.line()).toBe("ready");
      const before = printer.print(c.proc.pid)!;
      c.say("go");
      let after = printer.print(c.proc.pid)!;
      for (let i = 0; i < 200 && after.exe === before.exe; i++) {
        await Bun.sleep(10);
        after = printer.print(c.proc.pid)!;
      }
      expect(after.exe).not.toBe(before.exe);
      expect(after).toEqual(fromProc(c.proc.pid));
      expect(after.startTime).toBe(before.startTime);
      const s = statSync(sleep, { bigint: true });
      expect(after.exe).toBe(`k${kernelDev(Number(s.dev))}:${Number(s.ino >> 32n)}:${Number(s.ino & 0xffffffffn)}`);
    } finally {
      c.proc.kill();
      await c.proc.exited;
    }
  });

  test("an exited process not yet reaped, a kernel thread and a pid with no process: no print", async () => {
    // The parent forks a child that exits at once and does not reap it: a zombie until the parent goes.
    const c = child("import os,sys,time\npid=os.fork()\nif pid==0:\n  os._exit(0)\ntime.sleep(0.2)\nprint(pid)\nsys.stdin.readline()");
    try {
      const zombie = Number(await c.line());
      expect(readFileSync(`/proc/${zombie}/stat`, "utf8")).toMatch(/\) Z /);
      expect(printer.print(zombie)).toBeNull();
    } finally {
      c.proc.kill();
      await c.proc.exited;
    }
    const kthreadd = 2;
    expect(readFileSync(`/proc/${kthreadd}/stat`, "utf8")).toContain("(kthreadd)");
    expect(printer.print(kthreadd)).toBeNull();
    const max = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
    expect(printer.print(max + 1)).toBeNull();
  });

  test("the same answer over many calls and collections (the context buffer stays where the kernel is told it is)", () => {
    const want = fromProc(process.pid);
    for (let i = 0; i < 20_000; i++) {
      if (i % 5_000 === 0) Bun.gc(true);
      if (printer.print(process.pid)?.startTime !== want.startTime) throw new Error(`call ${i} differed`);
    }
    expect(printer.print(process.pid)).toEqual(want);
  });

  test("after close: bpf_closed", async () => {
    const p = await TaskPrinter.open();
    p.close();
    p.close();
    expect(errorOf(() => p.print(process.pid), BpfError).code).toBe("bpf_closed");
  });

  test("the agent's wrapper gives attestation the kernel's print", async () => {
    const warnings: string[] = [];
    const logger = { warn: (e: string) => warnings.push(e), info() {}, error() {}, debug() {} } as unknown as Parameters<typeof openKernelPrint>[0];
    const k = await openKernelPrint(logger);
    try {
      expect(k.print).toBeDefined();
      expect(k.print!(process.pid)).toEqual(fromProc(process.pid));
      expect(warnings).toEqual([]);
    } finally {
      k.close();
    }
    expect(k.print!(process.pid)).toBeNull();
  });
});
