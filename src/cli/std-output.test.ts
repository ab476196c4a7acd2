// A reader that leaves early: the real CLI (bun src/cli/main.ts) with its stdout or stderr the
// write end of a pipe whose read end is already closed, so the first write fails with EPIPE.
// It ends quietly (no stack trace) with the status the command has; tail -f stops as on SIGTERM.
// Then stdOutput itself with streams that fail: only EPIPE is taken as a closed reader.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, constants, openSync } from "node:fs";
import { join } from "node:path";
import { connClose, makeKit, type Kit } from "./audit-testkit.ts";
import { stdOutput, type WriteStream } from "./std-output.ts";

const MAIN = join(import.meta.dir, "main.ts");

let kit: Kit;
beforeAll(async () => {
  kit = await makeKit("epipe");
});
afterAll(() => kit.cleanup());

/** The write end of a FIFO whose reader has already gone: every write to it fails with EPIPE. */
function deadPipe(): number {
  const path = join(kit.root, `fifo-${Math.random().toString(36).slice(2)}`);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_WRONLY);
  closeSync(reader);
  return writer;
}

/** Runs the CLI with stdout (or stderr) on a dead pipe; the other stream is captured. */
async function withDead(which: "stdout" | "stderr", args: readonly string[]): Promise<{ code: number | string; text: string }> {
  const fd = deadPipe();
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    stdin: "ignore",
    stdout: which === "stdout" ? fd : "pipe",
    stderr: which === "stderr" ? fd : "pipe",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  closeSync(fd);
  try {
    const other = which === "stdout" ? proc.stderr : proc.stdout;
    const [text, code] = await Promise.all([new Response(other as ReadableStream).text(), Promise.race([proc.exited, Bun.sleep(10_000).then(() => "timeout")])]);
    return { code, text };
  } finally {
    proc.kill("SIGKILL");
  }
}

function log(): string[] {
  const p = kit.place();
  const l = p.open();
  for (let i = 1; i <= 12; i++) l.emit("conn_close", connClose(i));
  l.close();
  return p.flags;
}

describe("a closed stdout or stderr ends the command quietly", () => {
  test("--help with stdout closed: exit 0, nothing on stderr", async () => {
    expect(await withDead("stdout", ["--help"])).toEqual({ code: 0, text: "" });
  }, 20_000);

  test("audit verify with stdout closed keeps its status: 0 for an intact log, 2 for a bad flag", async () => {
    const flags = log();
    expect(await withDead("stdout", ["audit", "verify", ...flags, "--bundle", kit.rootsPem])).toEqual({ code: 0, text: "" });
    const bad = await withDead("stdout", ["audit", "verify", ...flags, "--bundle", join(kit.root, "none.pem")]);
    expect(bad.code).toBe(2);
    expect(bad.text).toContain("no such file");
    expect(bad.text).not.toContain("EPIPE");
  }, 20_000);

  test("audit tail -f with stdout closed stops as on SIGTERM: exit 0, no stack trace", async () => {
    expect(await withDead("stdout", ["audit", "tail", "-f", ...log()])).toEqual({ code: 0, text: "" });
  }, 20_000);

  test("no arguments with stderr closed: the usage exit 2, nothing on stdout", async () => {
    expect(await withDead("stderr", [])).toEqual({ code: 2, text: "" });
  }, 20_000);
});

describe("stdOutput", () => {
  class Failing implements WriteStream {
    readonly writes: string[] = [];
    listener: ((e: Error) => void) | null = null;
    constructor(private readonly code: string | null) {}
    write(text: string): boolean {
      this.writes.push(text);
      if (this.code !== null) this.listener?.(Object.assign(new Error(`${this.code}: write`), { code: this.code }));
      return true;
    }
    on(_event: "error", listener: (e: Error) => void): this {
      this.listener = listener;
      return this;
    }
  }

  test("EPIPE on stdout: stopped once, later writes dropped; stderr still written", () => {
    const out = new Failing("EPIPE");
    const err = new Failing(null);
    let stops = 0;
    const io = stdOutput({ out, err }, () => stops++);
    io.out("a");
    io.out("b");
    io.err("c");
    expect([out.writes, err.writes, stops]).toEqual([["a"], ["c"], 1]);
  });

  test("EPIPE on stderr: later writes dropped, nothing stopped", () => {
    const err = new Failing("EPIPE");
    let stops = 0;
    const io = stdOutput({ out: new Failing(null), err }, () => stops++);
    io.err("a");
    io.err("b");
    expect([err.writes, stops]).toEqual([["a"], 0]);
  });

  test("any other write error is thrown, never swallowed", () => {
    const io = stdOutput({ out: new Failing("EIO"), err: new Failing("ENOSPC") }, () => undefined);
    expect(() => io.out("a")).toThrow("EIO");
    expect(() => io.err("a")).toThrow("ENOSPC");
  });
});
