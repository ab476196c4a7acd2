import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { FakeProcFs } from "./fake-proc-fs.ts";
import { UnixAttestor } from "./unix.ts";
import { AttestError } from "./errors.ts";
import { Accounts, parseIdFile } from "./accounts.ts";
import { rejectionCode } from "../../test/shim.ts";

const sha = (t: string) => createHash("sha256").update(t).digest("hex");
const passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\nbroken line\n";
const group = "root:x:0:\nalice:x:1000:\ndocker:x:998:alice\n";

function world(): FakeProcFs {
  return new FakeProcFs().set("/etc/passwd", { text: passwd, stat: { ino: 7n } }).set("/etc/group", { text: group, stat: { ino: 8n } });
}

const codeOf = (p: Promise<unknown>) => rejectionCode(p, AttestError);

describe("unix attestor", () => {
  test("SPIRE's selectors, effective ids, names where the files have them", async () => {
    const fs = world().addProcess({ pid: 10, uids: [0, 1000, 1000, 1000], gids: [5, 1000, 5, 5], groups: [998, 4242], exePath: "/usr/bin/node", exeContent: "node-bin" });
    const got = await new UnixAttestor(fs).attest({ pid: 10, startTime: 1000 });
    expect(got).toEqual([
      "unix:uid:1000",
      "unix:user:alice",
      "unix:gid:1000",
      "unix:group:alice",
      "unix:supplementary_gid:998",
      "unix:supplementary_group:docker",
      "unix:supplementary_gid:4242",
      "unix:path:/usr/bin/node",
      `unix:sha256:${sha("node-bin")}`,
    ]);
  });

  test("an id with no line in /etc/passwd or /etc/group gets no name selector", async () => {
    const fs = world().addProcess({ pid: 11, uids: [7, 7, 7, 7], gids: [7, 7, 7, 7] });
    const got = await new UnixAttestor(fs).attest({ pid: 11, startTime: 1000 });
    expect(got.filter((s) => s.startsWith("unix:user:") || s.startsWith("unix:group:"))).toEqual([]);
  });

  test("names follow /etc/passwd when it changes, within recheckMs", async () => {
    const fs = world().addProcess({ pid: 12 });
    let now = 0;
    const a = new UnixAttestor(fs, { accounts: new Accounts(fs, { recheckMs: 1000, now: () => now }) });
    expect(await a.attest({ pid: 12, startTime: 1000 })).toContain("unix:user:alice");
    fs.set("/etc/passwd", { text: "bob:x:1000:1000::/:/bin/sh\n", stat: { ino: 7n, ctimeNs: 5n } });
    now = 999;
    expect(await a.attest({ pid: 12, startTime: 1000 })).toContain("unix:user:alice");
    now = 1000;
    expect(await a.attest({ pid: 12, startTime: 1000 })).toContain("unix:user:bob");
  });

  test("a deleted executable: path without ' (deleted)', hash of the running file", async () => {
    const fs = world().addProcess({ pid: 13, exePath: "/opt/app (deleted)", exeContent: "old", exeStat: { nlink: 0 } });
    const got = await new UnixAttestor(fs).attest({ pid: 13, startTime: 1000 });
    expect(got).toContain("unix:path:/opt/app");
    expect(got).toContain(`unix:sha256:${sha("old")}`);
  });

  test("a file really named '... (deleted)' that still has links keeps its name", async () => {
    const fs = world().addProcess({ pid: 14, exePath: "/opt/app (deleted)", exeStat: { nlink: 1 } });
    expect(await new UnixAttestor(fs).attest({ pid: 14, startTime: 1000 })).toContain("unix:path:/opt/app (deleted)");
  });

  test("each binary is hashed once: by device, inode, size, mtime and ctime", async () => {
    const fs = world().addProcess({ pid: 15, exeContent: "v1", exeStat: { ino: 9n, size: 2n, mtimeNs: 100n, ctimeNs: 100n } });
    fs.addProcess({ pid: 16, exeContent: "v1", exeStat: { ino: 9n, size: 2n, mtimeNs: 100n, ctimeNs: 100n } });
    const a = new UnixAttestor(fs);
    await a.attest({ pid: 15, startTime: 1000 });
    await a.attest({ pid: 16, startTime: 1000 });
    expect(a.hashes.hashed).toBe(1);
    // rewritten in place, mtime restored: the ctime moved, so it is hashed again
    fs.addProcess({ pid: 17, exeContent: "v2", exeStat: { ino: 9n, size: 2n, mtimeNs: 100n, ctimeNs: 200n } });
    expect(await a.attest({ pid: 17, startTime: 1000 })).toContain(`unix:sha256:${sha("v2")}`);
    expect(a.hashes.hashed).toBe(2);
  });

  test("the hash cache is bounded", async () => {
    const fs = world();
    const a = new UnixAttestor(fs, { hashes: new (await import("./exe-hash.ts")).ExeHashCache(fs, 3) });
    for (let i = 0; i < 10; i++) {
      fs.addProcess({ pid: 100 + i, exeStat: { ino: BigInt(1000 + i) } });
      await a.attest({ pid: 100 + i, startTime: 1000 });
    }
    expect(a.hashes.size).toBe(3);
  });

  test("a file that changes while it is hashed: attest_exe_changed, and not cached", async () => {
    const fs = world().addProcess({ pid: 18, exeStat: { ino: 3n, ctimeNs: 1n } });
    fs.onHash = () => fs.set("/proc/18/exe", { link: "/usr/bin/proc", text: "other", stat: { ino: 3n, ctimeNs: 2n } });
    const a = new UnixAttestor(fs);
    expect(await codeOf(a.attest({ pid: 18, startTime: 1000 }))).toBe("attest_exe_changed");
    expect(a.hashes.size).toBe(0);
  });

  test("an executable that cannot be resolved: attest_exe_unreadable", async () => {
    const fs = world().addProcess({ pid: 19 });
    fs.set("/proc/19/exe", { stat: {} }); // readlink fails with EINVAL
    expect(await codeOf(new UnixAttestor(fs).attest({ pid: 19, startTime: 1000 }))).toBe("attest_exe_unreadable");
  });

  test("a malformed status: attest_bad_proc", async () => {
    const fs = world().addProcess({ pid: 20 });
    fs.set("/proc/20/status", { text: "Name:\tx\n" });
    expect(await codeOf(new UnixAttestor(fs).attest({ pid: 20, startTime: 1000 }))).toBe("attest_bad_proc");
  });
});

describe("parseIdFile", () => {
  test("the first line for an id wins; comments and malformed lines are skipped", () => {
    expect([...parseIdFile(passwd + "#x:x:5:\nnoid:x::\n:x:6:\n")]).toEqual([
      [0, "root"],
      [1000, "alice"],
    ]);
  });
});
