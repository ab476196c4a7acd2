// nodeProcFs's synchronous reads (what a cached attestation makes) against node:fs's own answers.
import { describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nodeProcFs } from "./node-proc-fs.ts";

describe("nodeProcFs, synchronous", () => {
  test("fileIdSync follows links, as stat does: dev:ino of the file itself, exact as bigints", () => {
    const dir = mkdtempSync(join(tmpdir(), "tidegate-test-procfs-"));
    try {
      const file = join(dir, "f");
      writeFileSync(file, "x");
      symlinkSync(file, join(dir, "link"));
      const b = statSync(file, { bigint: true });
      expect(nodeProcFs.fileIdSync(file)).toBe(`${b.dev}:${b.ino}`);
      expect(nodeProcFs.fileIdSync(join(dir, "link"))).toBe(`${b.dev}:${b.ino}`);
      const self = statSync("/proc/self/exe", { bigint: true });
      expect(nodeProcFs.fileIdSync("/proc/self/exe")).toBe(`${self.dev}:${self.ino}`);
      expect(() => nodeProcFs.fileIdSync(join(dir, "missing"))).toThrow(expect.objectContaining({ code: "ENOENT" }));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("readTextSync reads a /proc file whole; ownerSync gives lstat's owner", () => {
    const fromFs = readFileSync(`/proc/${process.pid}/status`, "utf8").split("\n")[0];
    expect(nodeProcFs.readTextSync(`/proc/${process.pid}/status`).split("\n")[0]).toBe(fromFs!);
    const own = lstatSync(`/proc/${process.pid}`);
    expect(nodeProcFs.ownerSync(`/proc/${process.pid}`)).toEqual({ uid: own.uid, gid: own.gid });
    expect(() => nodeProcFs.readTextSync("/proc/0/stat")).toThrow();
  });

  test("readBytesSync reads a /proc file from its start, at most the buffer's length; a missing one throws ENOENT", () => {
    const path = `/proc/${process.pid}/stat`;
    const buf = new Uint8Array(4096);
    const n = nodeProcFs.readBytesSync(path, buf);
    const text = new TextDecoder().decode(buf.subarray(0, n));
    // the same process's stat read again: the fields before the ones that tick (pid, comm, state, ppid, …)
    expect(text.split(" ").slice(0, 8)).toEqual(readFileSync(path, "utf8").split(" ").slice(0, 8));
    expect(text.endsWith("\n")).toBe(true);
    const short = new Uint8Array(5);
    expect(nodeProcFs.readBytesSync(path, short)).toBe(5);
    expect(new TextDecoder().decode(short)).toBe(text.slice(0, 5));
    expect(() => nodeProcFs.readBytesSync("/proc/0/stat", buf)).toThrow(expect.objectContaining({ code: "ENOENT" }));
  });
});
