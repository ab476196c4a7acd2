// The executable hash cache under concurrency: look-ups of one binary not cached yet share one
// read; a failed shared read fails those that asked through the same path, while those that asked
// through other processes' paths share one new read; nothing failed is cached.
import { describe, expect, test } from "bun:test";
import { ExeHashCache } from "./exe-hash.ts";
import { fakeStat } from "./fake-proc-fs.ts";
import type { FileStat, HashedFile, ProcFs } from "./proc-fs.ts";
import { AttestError } from "./errors.ts";

const ST: FileStat = fakeStat({ dev: 1n, ino: 42n, size: 90n, mtimeNs: 5n, ctimeNs: 5n });

/** A ProcFs whose reads wait until the test settles them, in the order they were asked for. */
function slowFs() {
  const reads: { path: string; settle: (r: HashedFile | Error) => void }[] = [];
  const fs = {
    hashFile: (path: string) =>
      new Promise<HashedFile>((resolve, reject) => {
        reads.push({ path, settle: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      }),
  } as unknown as ProcFs;
  return { fs, reads };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("ExeHashCache: concurrent look-ups", () => {
  test("eight look-ups of one binary not cached yet share one read, and all get its hash", async () => {
    const { fs, reads } = slowFs();
    const cache = new ExeHashCache(fs);
    const all = Promise.all(Array.from({ length: 8 }, (_, i) => cache.sha256(`/proc/${100 + i}/exe`, ST)));
    await tick();
    expect(reads.map((r) => r.path)).toEqual(["/proc/100/exe"]);
    reads[0]!.settle({ sha256: "ab".repeat(32), before: ST, after: ST });
    expect(await all).toEqual(Array(8).fill("ab".repeat(32)));
    expect(cache.hashed).toBe(1);
    expect(await cache.sha256("/proc/200/exe", ST)).toBe("ab".repeat(32)); // cached
    expect(reads).toHaveLength(1);
  });

  test("the shared read fails: the same path fails with it; another process's path reads on its own; nothing failed is cached", async () => {
    const { fs, reads } = slowFs();
    const cache = new ExeHashCache(fs);
    const first = cache.sha256("/proc/100/exe", ST);
    const samePath = cache.sha256("/proc/100/exe", ST);
    const other = cache.sha256("/proc/101/exe", ST);
    await tick();
    expect(reads.map((r) => r.path)).toEqual(["/proc/100/exe"]);
    const failed = Promise.allSettled([first, samePath]);
    reads[0]!.settle(Object.assign(new Error("ENOENT: /proc/100/exe"), { code: "ENOENT" }));
    expect((await failed).map((r) => (r.status === "rejected" ? String(r.reason) : r.status))).toEqual(["Error: ENOENT: /proc/100/exe", "Error: ENOENT: /proc/100/exe"]);
    await tick();
    expect(reads.map((r) => r.path)).toEqual(["/proc/100/exe", "/proc/101/exe"]);
    reads[1]!.settle({ sha256: "cd".repeat(32), before: ST, after: ST });
    expect(await other).toBe("cd".repeat(32));
    expect(cache.hashed).toBe(1);
  });

  test("the shared read fails and two look-ups came through other paths: one more read, not one each", async () => {
    const { fs, reads } = slowFs();
    const cache = new ExeHashCache(fs);
    const first = cache.sha256("/proc/100/exe", ST).catch((e: unknown) => e);
    const others = Promise.all([cache.sha256("/proc/101/exe", ST), cache.sha256("/proc/102/exe", ST)]);
    await tick();
    reads[0]!.settle(Object.assign(new Error("ENOENT: /proc/100/exe"), { code: "ENOENT" }));
    expect(String(await first)).toBe("Error: ENOENT: /proc/100/exe");
    await tick();
    expect(reads.map((r) => r.path)).toEqual(["/proc/100/exe", "/proc/101/exe"]);
    reads[1]!.settle({ sha256: "ab".repeat(32), before: ST, after: ST });
    expect(await others).toEqual(["ab".repeat(32), "ab".repeat(32)]);
    expect(reads).toHaveLength(2);
  });

  test("a file that changes during the shared read: attest_exe_changed for its path, not cached; the next look-up reads again", async () => {
    const { fs, reads } = slowFs();
    const cache = new ExeHashCache(fs);
    const a = cache.sha256("/proc/100/exe", ST);
    const b = cache.sha256("/proc/100/exe", ST);
    await tick();
    const caught = [a, b].map((p) => p.catch((x: unknown) => x));
    reads[0]!.settle({ sha256: "ef".repeat(32), before: ST, after: fakeStat({ ...ST, ctimeNs: 6n }) });
    for (const c of caught) {
      const e = await c;
      expect(e).toBeInstanceOf(AttestError);
      expect((e as AttestError).code).toBe("attest_exe_changed");
    }
    expect(cache.size).toBe(0);
    const again = cache.sha256("/proc/100/exe", ST);
    await tick();
    expect(reads).toHaveLength(2);
    reads[1]!.settle({ sha256: "01".repeat(32), before: ST, after: ST });
    expect(await again).toBe("01".repeat(32));
  });
});
