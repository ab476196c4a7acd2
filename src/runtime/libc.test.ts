// The libc wrappers against the real glibc. Calls that change credentials, signals or the process
// image run in a child Bun process (the test runner keeps its own); they need root, and are
// skipped with a message without it, except under CI=true, where they fail.
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as c from "./libc.ts";
import { LibcError } from "./libc.ts";

const isRoot = process.getuid?.() === 0;
const CI = process.env.CI === "true";
const rootTest = (name: string, fn: () => Promise<void>) => {
  if (isRoot) return test(name, fn, 20_000);
  if (CI) return test(name, () => { throw new Error("needs root"); });
  return test.skip(`${name} (skipped: needs root)`, () => {});
};
if (!isRoot && !CI) console.log("libc: not root, the credential tests are skipped");

const LIBC = join(import.meta.dir, "libc.ts");

/** Runs `body` in a child Bun with `c` bound to this module; returns its exit code and output. */
async function child(body: string, env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const script = `import * as c from ${JSON.stringify(LIBC)};\nimport { readFileSync, readdirSync } from "node:fs";\n${body}`;
  const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { PATH: "/usr/bin:/bin", ...env } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** "Groups:\t100 65534 |..." as "Groups: 100 65534|...". */
const norm = (line: string) => line.split("|").map((f) => f.replace(/\s+/g, " ").trim()).join("|");

function thrown(fn: () => unknown): LibcError {
  try {
    fn();
  } catch (e) {
    if (e instanceof LibcError) return e;
    throw e;
  }
  throw new Error("did not throw");
}

describe("errno", () => {
  test("names the errnos the launcher branches on, numbers the rest", () => {
    expect(c.errnoName(c.Errno.EPERM)).toBe("EPERM");
    expect(c.errnoName(13)).toBe("EACCES");
    expect(c.errnoName(8)).toBe("ENOEXEC");
    expect(c.errnoName(95)).toBe("EOPNOTSUPP");
    expect(c.errnoName(96)).toBe("errno 96");
  });

  test("a failed call throws libc_failed with the call named and errno set", () => {
    const e = thrown(() => c.prctl("bogus option", 0x7fff_0000));
    expect(e.code).toBe("libc_failed");
    expect(e.errno).toBe(c.Errno.EINVAL);
    expect(e.message).toBe("libc: prctl(bogus option) failed: EINVAL");
  });

  test("execve of a missing file returns to the caller with ENOENT, and of a directory with EACCES", () => {
    const missing = thrown(() => c.execve("/nonexistent/tidegate-test", ["x"], []));
    expect([missing.code, missing.errno]).toEqual(["libc_failed", c.Errno.ENOENT]);
    expect(missing.message).toBe('libc: execve("/nonexistent/tidegate-test") failed: ENOENT');
    expect(thrown(() => c.execve("/tmp", ["x"], [])).errno).toBe(c.Errno.EACCES);
  });
});

describe("arguments", () => {
  test("a NUL inside a string is refused before any call", () => {
    expect(thrown(() => c.execve("/bin/true", ["a\0b"], [])).code).toBe("libc_bad_argument");
    expect(thrown(() => c.execve("/bin/true", ["true"], [new Uint8Array([65, 0, 66])])).message).toBe("libc: environment entry 0 contains a NUL byte");
    expect(c.cString("ab", "x")).toEqual(new Uint8Array([97, 98, 0]));
  });

  test("ids outside 0..2^32-2 are refused (2^32-1 means 'unchanged' to the kernel)", () => {
    for (const bad of [-1, 0xffffffff, 1.5, Number.NaN]) {
      expect(thrown(() => c.setresuid(bad)).code).toBe("libc_bad_argument");
      expect(thrown(() => c.setresgid(bad)).code).toBe("libc_bad_argument");
      expect(thrown(() => c.setgroups([0, bad])).code).toBe("libc_bad_argument");
    }
  });
});

describe("calls on this process", () => {
  test("getpid is this process; PR_GET_NO_NEW_PRIVS reads 0 or 1", () => {
    expect(c.getpid()).toBe(process.pid);
    expect([0, 1]).toContain(c.prctl("PR_GET_NO_NEW_PRIVS", c.PR_GET_NO_NEW_PRIVS));
  });

  test("setCloseOnExec sets FD_CLOEXEC and ignores a closed descriptor", () => {
    const fd = openSync("/dev/null", "r");
    try {
      c.setCloseOnExec(fd);
      const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!;
      expect(parseInt(flags, 8) & 0o2000000).toBe(0o2000000);
    } finally {
      closeSync(fd);
    }
    expect(() => c.setCloseOnExec(fd)).not.toThrow();
  });
});

describe("in a child process", () => {
  rootTest("setgroups, setresgid, setresuid reach every thread; capset empties the rest", async () => {
    const r = await child(`
      c.prctl("nnp", c.PR_SET_NO_NEW_PRIVS, 1);
      c.setgroups([65534, 100]);
      c.setresgid(65534);
      c.setresuid(65534);
      c.clearThreadCapabilities();
      for (const t of readdirSync("/proc/self/task")) {
        const s = readFileSync("/proc/self/task/" + t + "/status", "utf8");
        console.log(s.split("\\n").filter((l) => /^(Uid|Gid|Groups|CapPrm|CapEff|CapAmb):/.test(l)).join("|"));
      }
      console.log(readFileSync("/proc/thread-self/status", "utf8").split("\\n").filter((l) => /^(CapInh|NoNewPrivs):/.test(l)).join("|"));
      try { c.setresuid(0); } catch (e) { console.log(e.code, e.errno); }
    `);
    expect(r.err).toBe("");
    const lines = r.out.trim().split("\n");
    expect(lines.length).toBeGreaterThanOrEqual(4); // Bun has threads besides the JavaScript one
    for (const l of lines.slice(0, -2)) {
      expect(norm(l)).toBe("Uid: 65534 65534 65534 65534|Gid: 65534 65534 65534 65534|Groups: 100 65534|CapPrm: 0000000000000000|CapEff: 0000000000000000|CapAmb: 0000000000000000");
    }
    expect(norm(lines.at(-2)!)).toBe("CapInh: 0000000000000000|NoNewPrivs: 1");
    expect(lines.at(-1)).toBe(`libc_failed ${c.Errno.EPERM}`);
  });

  rootTest("defaultSignal undoes Bun's ignored SIGPIPE; unblockAllSignals empties the mask", async () => {
    const r = await child(`
      const ign = () => /SigIgn:\\s+([0-9a-f]+)/.exec(readFileSync("/proc/thread-self/status", "utf8"))[1];
      console.log(ign());
      c.defaultSignal(13);
      c.unblockAllSignals();
      console.log(ign());
    `);
    const [before, after] = r.out.trim().split("\n").map((h) => BigInt(`0x${h}`));
    expect(before! & (1n << 12n)).toBe(1n << 12n);
    expect(after! & (1n << 12n)).toBe(0n);
  });

  // Needs a kernel with Landlock ABI 6 (this kind of machine's 6.18 has it); under CI it must run.
  const scoped = c.landlockAbi() >= 6;
  (scoped || CI ? test : test.skip)(`landlockScope: what the thread execs signals nothing outside its domain, its own children it does${scoped || CI ? "" : " (skipped: no Landlock ABI 6 here)"}`, async () => {
    const parent = process.pid;
    const probe = `kill -0 ${parent} 2>/dev/null && echo outside-signalled || echo outside-refused; sleep 5 & kill $! && wait $!; echo child-$?`;
    const free = await child(`c.prctl("nnp", c.PR_SET_NO_NEW_PRIVS, 1); c.execve("/bin/sh", ["sh", "-c", ${JSON.stringify(probe)}], []);`);
    expect(free.out.trim().split("\n")).toEqual(["outside-signalled", "child-143"]);
    const r = await child(`
      c.prctl("nnp", c.PR_SET_NO_NEW_PRIVS, 1);
      console.log("abi", c.landlockAbi() >= 6);
      c.landlockScope(c.LANDLOCK_SCOPE_SIGNAL | c.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET);
      c.execve("/bin/sh", ["sh", "-c", ${JSON.stringify(probe)}], []);
    `);
    expect([r.code, r.out.trim().split("\n")]).toEqual([0, ["abi true", "outside-refused", "child-143"]]);
  }, 20_000);

  (scoped || CI ? test : test.skip)(`landlockScope without no_new_privs (and not root): refused with EPERM, nothing applied${scoped || CI ? "" : " (skipped: no Landlock ABI 6 here)"}`, async () => {
    if (isRoot) {
      const r = await child(`c.setresuid(65534); try { c.landlockScope(c.LANDLOCK_SCOPE_SIGNAL); console.log("applied"); } catch (e) { console.log(e.code, e.errno); }`);
      expect(r.out.trim()).toBe(`libc_failed ${c.Errno.EPERM}`);
    } else {
      const r = await child(`try { c.landlockScope(c.LANDLOCK_SCOPE_SIGNAL); console.log("applied"); } catch (e) { console.log(e.code, e.errno); }`);
      expect(r.out.trim()).toBe(`libc_failed ${c.Errno.EPERM}`);
    }
  });

  rootTest("execve replaces the process: argv and the environment are exactly what was passed", async () => {
    const r = await child(`c.execve("/usr/bin/env", ["env"], ["A=1", new Uint8Array([66, 61, 0xff])]);`, { SECRET: "x" });
    expect(r.code).toBe(0);
    expect(r.out.split("\n")[0]).toBe("A=1");
    expect(r.out.split("\n")[1]!.startsWith("B=")).toBe(true); // bytes passed as given, not as UTF-8
    expect(r.out).not.toContain("SECRET");
  });
});
