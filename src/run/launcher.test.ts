// The launcher (../shared/DESIGN.md section 2, "Privileges"): its pure parts, then real launches
// as root into a test cgroup under the real cgroup2 mount, as uid/gid 65534. Without root and
// cgroup2 the real launches are skipped with a message, except under CI=true, where they fail.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeHost } from "../runtime/host.ts";
import { launchRequest } from "../cli/launch.ts";
import { rootCommand } from "../cli/main.ts";
import { credentialProblems, launcherArgv, launchEnvironment, parseStatus, searchPath, selfBinary, type ThreadStatus } from "./launcher.ts";
import { RunError } from "./errors.ts";

const isRoot = process.getuid?.() === 0;
const CI = process.env.CI === "true";
const mount = probeHost().cgroup2;
const rootTest = (name: string, fn: () => Promise<void>) => {
  if (isRoot && mount !== null) return test(name, fn, 30_000);
  if (CI) return test(name, () => { throw new Error(`needs root and a cgroup2 mount (root: ${isRoot}, cgroup2: ${mount})`); });
  return test.skip(`${name} (skipped: needs root and cgroup2)`, () => {});
};
if ((!isRoot || mount === null) && !CI) console.log("launcher: not root or no cgroup2, the real launches are skipped");

const PREFIX = "tidegate-test-launch-";
const top = mount === null ? "" : join(mount, `${PREFIX}${Math.random().toString(16).slice(2, 10)}`);
const tmp = mkdtempSync(join(tmpdir(), "tidegate-test-launch-"));
const NOBODY = 65534;

/** The launcher from source: main.ts once `__launch` is among its commands, the test entry until then. */
const binary = rootCommand.subcommands?.some((c) => c.name === "__launch")
  ? selfBinary()
  : [process.execPath, "--no-env-file", join(import.meta.dir, "launch-entry.ts")];

/** A cgroup of its own for one test, under this run's top cgroup. */
function cgroup(name: string): string {
  const dir = join(top, name);
  mkdirSync(dir);
  return dir;
}

/** Removes a cgroup tree deepest first, once its processes are gone (empty cgroups only). */
async function removeCgroups(dir: string): Promise<void> {
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await removeCgroups(join(dir, e.name));
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      for (const pid of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
      rmdirSync(dir);
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await Bun.sleep(10);
    }
  }
}

interface Launched {
  code: number;
  out: string;
  err: string;
}

function spawnLauncher(o: { dir: string; uid?: number; gid?: number; groups?: number[]; allowRoot?: boolean; cwd?: string; command: string[] }, env: Record<string, string> = {}, stdin?: string) {
  const argv = launcherArgv({ binary, cgroupDir: o.dir, uid: o.uid ?? NOBODY, gid: o.gid ?? NOBODY, groups: o.groups, allowRoot: o.allowRoot, ...(o.cwd !== undefined ? { cwd: o.cwd } : {}), command: o.command });
  return Bun.spawn(argv, {
    cwd: tmp,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
}

async function run(o: Parameters<typeof spawnLauncher>[0], env: Record<string, string> = {}, stdin?: string): Promise<Launched> {
  const p = spawnLauncher(o, env, stdin);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

beforeAll(async () => {
  if (!isRoot || mount === null) return;
  for (const name of readdirSync(mount)) if (name.startsWith(PREFIX)) await removeCgroups(join(mount, name));
  mkdirSync(top);
});

afterAll(async () => {
  if (isRoot && mount !== null && existsSync(top)) await removeCgroups(top);
  rmSync(tmp, { recursive: true, force: true });
});

const status = (over: Partial<ThreadStatus> = {}): ThreadStatus => ({
  uids: [NOBODY, NOBODY, NOBODY, NOBODY],
  gids: [NOBODY, NOBODY, NOBODY, NOBODY],
  groups: [NOBODY],
  caps: { CapInh: 0n, CapPrm: 0n, CapEff: 0n, CapBnd: 0n, CapAmb: 0n },
  noNewPrivs: 1,
  sigIgn: 0n,
  sigBlk: 0n,
  ...over,
});
const want = { uid: NOBODY, gid: NOBODY, groups: [NOBODY], root: false };

describe("credential checks", () => {
  test("a fully dropped status passes", () => {
    expect(credentialProblems(status(), want)).toEqual([]);
  });

  test.each([
    ["a saved uid left", { uids: [NOBODY, NOBODY, 0, NOBODY] }, "Uid is 65534 65534 0 65534, want 65534 x4"],
    ["an fs gid left", { gids: [NOBODY, NOBODY, NOBODY, 0] }, "Gid is 65534 65534 65534 0, want 65534 x4"],
    ["an extra group", { groups: [0, NOBODY] }, "Groups is 0,65534, want 65534"],
    ["no_new_privs unset", { noNewPrivs: 0 }, "NoNewPrivs is 0, want 1"],
    ["a bounding capability", { caps: { ...status().caps, CapBnd: 1n << 21n } }, "CapBnd is 200000, want 0"],
    ["an inheritable capability", { caps: { ...status().caps, CapInh: 1n } }, "CapInh is 1, want 0"],
    ["an ambient capability", { caps: { ...status().caps, CapAmb: 4n } }, "CapAmb is 4, want 0"],
  ] as const)("%s is refused", (_name, over, problem) => {
    expect(credentialProblems(status(over as Partial<ThreadStatus>), want)).toEqual([problem]);
  });

  test("a root target (--allow-root) keeps its capabilities but still needs no_new_privs", () => {
    const root = status({ uids: [0, 0, 0, 0], gids: [0, 0, 0, 0], groups: [0], caps: { CapInh: 0n, CapPrm: 0x1ffn, CapEff: 0x1ffn, CapBnd: 0x1ffn, CapAmb: 0n } });
    expect(credentialProblems(root, { uid: 0, gid: 0, groups: [0], root: true })).toEqual([]);
    expect(credentialProblems({ ...root, noNewPrivs: 0 }, { uid: 0, gid: 0, groups: [0], root: true })).toEqual(["NoNewPrivs is 0, want 1"]);
  });

  test("parseStatus reads this process's status; a missing line is run_privileges", () => {
    const s = parseStatus(readFileSync("/proc/thread-self/status", "utf8"));
    expect(s.uids.length).toBe(4);
    expect(typeof s.caps.CapBnd).toBe("bigint");
    expect(() => parseStatus("Uid:\t0\t0\t0\t0\n")).toThrow(RunError);
    expect(() => parseStatus(readFileSync("/proc/self/status", "utf8").replace(/CapEff:\s+\w+/, "CapEff:\tzz"))).toThrow("CapEff");
  });
});

describe("environment and PATH", () => {
  test("TIDEGATE_* names are dropped, everything else passes byte for byte, in order", () => {
    const raw = new TextEncoder().encode("A=1\0TIDEGATE_INSTANCE=x\0TIDEGATE=kept\0B=\xff\0tidegate_x=1\0\0C=\0");
    const out = launchEnvironment(raw).map((e) => new TextDecoder().decode(e));
    expect(out).toEqual(["A=1", "TIDEGATE=kept", "B=\xff", "tidegate_x=1", "C="]);
  });

  test.each([
    ["sh", "/a:/b/", ["/a/sh", "/b/sh"]],
    ["sh", ":/a", ["sh", "/a/sh"]], // an empty entry is the working directory
    ["sh", undefined, ["/bin/sh", "/usr/bin/sh"]], // glibc's default without PATH
    ["./x", "/a", ["./x"]],
    ["/bin/sh", "/a", ["/bin/sh"]],
  ] as const)("%p with PATH %p", (file, path, candidates) => {
    expect(searchPath(file, path)).toEqual([...candidates]);
  });
});

describe("command line", () => {
  test("launcherArgv: --flag=value, groups only when given, -- before the command", () => {
    expect(launcherArgv({ binary: "/usr/bin/tidegate", cgroupDir: "/cg/w", uid: 1, gid: 2, command: ["sh", "-c", "x"] })).toEqual([
      "/usr/bin/tidegate", "__launch", "--cgroup-dir=/cg/w", "--uid=1", "--gid=2", "--", "sh", "-c", "x",
    ]);
    expect(launcherArgv({ binary: ["bun", "main.ts"], cgroupDir: "/cg", uid: 0, gid: 0, groups: [], allowRoot: true, command: ["--x"] })).toEqual([
      "bun", "main.ts", "__launch", "--cgroup-dir=/cg", "--uid=0", "--gid=0", "--groups=", "--allow-root", "--", "--x",
    ]);
  });

  test("launcherArgv and launchRequest carry the CA bundle (absolute only)", () => {
    const argv = launcherArgv({ binary: "/t", cgroupDir: "/cg", uid: 1, gid: 2, envFd: 3, caBundle: "/run/t/intercept-ca-bundle.pem", command: ["x"] });
    expect(argv.slice(-3)).toEqual(["--ca-bundle=/run/t/intercept-ca-bundle.pem", "--", "x"]);
    const ctx = (values: Record<string, string | boolean>) => ({ values: { "cgroup-dir": "/cg", uid: "1", gid: "2", ...values }, positionals: ["x"] });
    expect(launchRequest(ctx({ "ca-bundle": "/b.pem" })).caBundle).toBe("/b.pem");
    expect(launchRequest(ctx({})).caBundle).toBeUndefined();
    expect(() => launchRequest(ctx({ "ca-bundle": "b.pem" }))).toThrow("--ca-bundle needs an absolute path");
  });

  test("launchRequest reads what launcherArgv writes and refuses what it cannot use", () => {
    const ctx = (values: Record<string, string | boolean>, positionals = ["true"]) => ({ values, positionals });
    expect(launchRequest(ctx({ "cgroup-dir": "/cg", uid: "7", gid: "8", groups: "1,2" }))).toEqual({ cgroupDir: "/cg", uid: 7, gid: 8, groups: [1, 2], allowRoot: false, command: ["true"] });
    expect(launchRequest(ctx({ "cgroup-dir": "/cg", uid: "7", gid: "8", groups: "" })).groups).toEqual([]);
    expect(launchRequest(ctx({ "cgroup-dir": "/cg", uid: "7", gid: "8" })).groups).toBeUndefined();
    const bads: Record<string, string>[] = [{ uid: "7" }, { uid: "-1", gid: "1" }, { uid: "4294967295", gid: "1" }, { uid: "1", gid: "x" }, { uid: "1", gid: "1", groups: "1,,2" }];
    for (const bad of bads) {
      expect(() => launchRequest(ctx({ "cgroup-dir": "/cg", ...bad }))).toThrow(RunError);
    }
    expect(() => launchRequest(ctx({ "cgroup-dir": "cg", uid: "1", gid: "1" }))).toThrow("absolute");
  });

  test("selfBinary from source is Bun with main.ts, reading no .env, bunfig or tsconfig from the working directory", () => {
    const self = selfBinary();
    expect(self[0]).toBe(process.execPath);
    expect(self.at(-1)).toBe(join(import.meta.dir, "..", "cli", "main.ts"));
    expect(self).toContain("--no-env-file");
  });
});

describe("real launches", () => {
  rootTest("the command leads a session of its own: no controlling terminal of its starter to push input into", async () => {
    const r = await run({ dir: cgroup("session"), command: ["sh", "-c", "echo $$; cut -d' ' -f6,7 /proc/self/stat"] });
    expect(r.code).toBe(0);
    const [pid, ids] = r.out.trim().split("\n");
    const [sid, ttyNr] = ids!.split(" ");
    expect(sid).toBe(pid);
    expect(ttyNr).toBe("0");
  });

  rootTest("--cwd is entered as the user: a folder it may enter works, a root-only one is refused before exec", async () => {
    const open = await run({ dir: cgroup("cwd-ok"), cwd: "/tmp", command: ["pwd"] });
    expect([open.code, open.out]).toEqual([0, "/tmp\n"]);
    const closed = join(tmp, "root-only");
    mkdirSync(closed, { mode: 0o700 });
    const refused = await run({ dir: cgroup("cwd-no"), cwd: closed, command: ["sh", "-c", "echo RAN"] });
    expect(refused.code).toBe(126);
    expect(refused.out).toBe("");
    expect(refused.err).toContain("entering the working directory");
    expect(refused.err).toContain("[run_bad_cwd]");
  });

  rootTest("the command runs in the cgroup as 65534:65534 with no capabilities and no_new_privs", async () => {
    const dir = cgroup("status");
    const r = await run({ dir, command: ["sh", "-c", "cat /proc/self/status; grep ^0:: /proc/self/cgroup; id -u; id -g; id -G"] });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const s = parseStatus(r.out);
    expect(credentialProblems(s, want)).toEqual([]);
    expect(s.caps).toEqual({ CapInh: 0n, CapPrm: 0n, CapEff: 0n, CapBnd: 0n, CapAmb: 0n });
    expect(s.noNewPrivs).toBe(1);
    expect([s.sigIgn, s.sigBlk]).toEqual([0n, 0n]); // Bun's ignored SIGPIPE is not inherited
    expect(r.out.trim().split("\n").slice(-4)).toEqual([`0::${dir.slice(mount!.length)}`, "65534", "65534", "65534"]);
  });

  rootTest("only stdin, stdout and stderr are inherited, not a descriptor the launcher was given", async () => {
    const argv = launcherArgv({ binary, cgroupDir: cgroup("fds"), uid: NOBODY, gid: NOBODY, command: ["ls", "/proc/self/fd"] });
    const p = Bun.spawn(argv, { cwd: tmp, env: { PATH: "/usr/bin:/bin" }, stdio: ["ignore", "pipe", "pipe", "pipe"] });
    const out = await new Response(p.stdout).text();
    expect(await p.exited).toBe(0);
    expect(out.trim().split("\n")).toEqual(["0", "1", "2", "3"]); // 3 is ls's own directory
  });

  rootTest("a drop that leaves a privilege is caught by the checks after it: nothing runs", async () => {
    const dir = cgroup("faulty-drop");
    const marker = join(tmp, "ran");
    const script = `
      import { launch } from ${JSON.stringify(join(import.meta.dir, "launcher.ts"))};
      import * as c from ${JSON.stringify(join(import.meta.dir, "..", "runtime", "libc.ts"))};
      const forgetful = (uid, gid, groups) => { c.setgroups(groups); c.setresgid(gid); c.setresuid(uid); };
      try {
        launch({ cgroupDir: ${JSON.stringify(dir)}, uid: ${NOBODY}, gid: ${NOBODY}, command: ["touch", ${JSON.stringify(marker)}] }, { warn() {} }, forgetful);
      } catch (e) { console.log(e.code + " " + e.message); }`;
    const p = Bun.spawn([process.execPath, "-e", script], { cwd: tmp, env: { PATH: "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect(err).toBe("");
    expect(out).toStartWith("run_privileges run: privileges not dropped as required: ");
    expect(out).toContain("NoNewPrivs is 0, want 1");
    expect(out).toContain("CapBnd is ");
    expect(existsSync(marker)).toBe(false);
  });

  rootTest("stdin reaches the command; its exit code is the launcher's", async () => {
    const dir = cgroup("stdio");
    const r = await run({ dir, command: ["sh", "-c", "cat; exit 7"] }, {}, "hello through the launcher\n");
    expect([r.code, r.out, r.err]).toEqual([7, "hello through the launcher\n", ""]);
  });

  rootTest("a SIGTERM to the launcher's pid ends the command by that signal (the launcher is the command)", async () => {
    const dir = cgroup("signal");
    const p = spawnLauncher({ dir, command: ["sleep", "30"] });
    const deadline = Date.now() + 10_000;
    while (readFileSync(`/proc/${p.pid}/comm`, "utf8").trim() !== "sleep") {
      if (Date.now() > deadline) throw new Error("the launcher never became sleep");
      await Bun.sleep(10);
    }
    expect(readFileSync(join(dir, "cgroup.procs"), "utf8").trim()).toBe(String(p.pid));
    p.kill("SIGTERM");
    await p.exited;
    expect([p.exitCode, p.signalCode]).toEqual([null, "SIGTERM"]);
  });

  rootTest("the environment is the launcher's minus TIDEGATE_*", async () => {
    const r = await run({ dir: cgroup("env"), command: ["/usr/bin/env"] }, { FOO: "bar baz", TIDEGATE_INSTANCE: "x", TIDEGATE_DEBUG: "1" });
    expect(r.out.trim().split("\n").sort()).toEqual(["FOO=bar baz", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]);
  });

  rootTest("--ca-bundle: the command sees the four CA variables set to the bundle, over the caller's, and can read it", async () => {
    const pub = join(tmp, "pub");
    mkdirSync(pub);
    chmodSync(tmp, 0o755);
    chmodSync(pub, 0o755);
    const bundle = join(pub, "intercept-ca-bundle.pem");
    writeFileSync(bundle, "-----BEGIN CERTIFICATE-----\n", { mode: 0o644 });
    const argv = launcherArgv({ binary, cgroupDir: cgroup("ca-env"), uid: NOBODY, gid: NOBODY, caBundle: bundle, command: ["sh", "-c", 'tr "\\0" "\\n" < /proc/$$/environ; head -c 27 "$SSL_CERT_FILE"'] }); // the environment as exec'd, duplicates included
    const p = Bun.spawn(argv, { cwd: tmp, env: { PATH: "/usr/bin:/bin", SSL_CERT_FILE: "/caller", CURL_CA_BUNDLE: "/caller", OTHER: "kept" }, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect([code, err]).toEqual([0, ""]);
    const lines = out.split("\n");
    expect(lines.slice(0, -1).sort()).toEqual([
      `CURL_CA_BUNDLE=${bundle}`,
      `NODE_EXTRA_CA_CERTS=${bundle}`,
      "OTHER=kept",
      "PATH=/usr/bin:/bin",
      `REQUESTS_CA_BUNDLE=${bundle}`,
      `SSL_CERT_FILE=${bundle}`,
    ]);
    expect(lines.at(-1)).toBe("-----BEGIN CERTIFICATE-----");
  });

  rootTest("exactly --groups become the supplementary groups", async () => {
    const r = await run({ dir: cgroup("groups"), groups: [100, NOBODY], command: ["id", "-G"] });
    expect(r.out.trim().split(" ").sort()).toEqual(["100", "65534"]);
    const none = await run({ dir: cgroup("nogroups"), groups: [], command: ["id", "-G"] });
    expect(none.out.trim()).toBe("65534"); // id -G always shows the primary group
  });

  rootTest("root without --allow-root is refused before anything runs", async () => {
    const dir = cgroup("root-refused");
    const r = await run({ dir, uid: 0, gid: 0, command: ["sh", "-c", "echo RAN"] });
    expect(r.code).toBe(126);
    expect(r.out).toBe("");
    expect(r.err).toContain("refusing to run the command as root (uid 0)");
    expect(r.err).toContain("[run_root_refused]");
    expect(readFileSync(join(dir, "cgroup.procs"), "utf8")).toBe(""); // it never joined
  });

  rootTest("root with --allow-root runs uncontained, with a warning, still with no_new_privs", async () => {
    const dir = cgroup("root-allowed");
    const r = await run({ dir, uid: 0, gid: 0, allowRoot: true, command: ["sh", "-c", "cat /proc/self/status; grep ^0:: /proc/self/cgroup"] });
    expect(r.code).toBe(0);
    expect(r.err).toContain("uncontained");
    const s = parseStatus(r.out);
    expect([s.uids, s.noNewPrivs]).toEqual([[0, 0, 0, 0], 1]);
    expect(r.out).toContain(`0::${dir.slice(mount!.length)}\n`);
  });

  rootTest("a command not in PATH exits 127 naming it (a PATH entry the user cannot enter is skipped)", async () => {
    const r = await run({ dir: cgroup("missing"), command: ["tidegate-test-no-such-command", "arg"] }, { PATH: "/root:/usr/bin:/bin" });
    expect(r.code).toBe(127);
    expect(r.err).toBe('tidegate run: "tidegate-test-no-such-command": command not found [run_not_found]\n');
    const path = await run({ dir: cgroup("missing-path"), command: ["/nonexistent/tidegate-test"] });
    expect([path.code, path.err]).toEqual([127, 'tidegate run: "/nonexistent/tidegate-test": no such file or directory [run_not_found]\n']);
  });

  rootTest("a file the user cannot execute exits 126; a script without #! runs under /bin/sh", async () => {
    const file = join(tmp, "not-executable");
    writeFileSync(file, "echo should not run\n");
    chmodSync(file, 0o644);
    chmodSync(tmp, 0o755);
    const r = await run({ dir: cgroup("noexec"), command: [file] });
    expect([r.code, r.out, r.err]).toEqual([126, "", `tidegate run: ${JSON.stringify(file)}: permission denied [run_not_executable]\n`]);
    const script = join(tmp, "script");
    writeFileSync(script, 'echo "script ran with $1"\n');
    chmodSync(script, 0o755);
    const s = await run({ dir: cgroup("script"), command: ["script", "an-arg"] }, { PATH: tmp });
    expect([s.code, s.out]).toEqual([0, "script ran with an-arg\n"]);
  });

  rootTest("a directory that is not a cgroup is refused, nothing runs", async () => {
    const r = await run({ dir: tmp, command: ["sh", "-c", "echo RAN"] });
    expect([r.code, r.out]).toEqual([126, ""]);
    expect(r.err).toContain("[run_bad_cgroup]");
    const gone = await run({ dir: join(top, "no-such-cgroup"), command: ["true"] });
    expect([gone.code, gone.err.includes("[run_bad_cgroup]")]).toEqual([126, true]);
  });

  rootTest("the command cannot move itself out of its cgroup", async () => {
    const dir = cgroup("escape");
    const script = `echo $$ > ${top}/cgroup.procs; echo "parent: $?"; echo $$ > ${mount}/cgroup.procs; echo "root: $?"; grep ^0:: /proc/self/cgroup`;
    const r = await run({ dir, command: ["sh", "-c", script] });
    expect(r.out).toBe(`parent: 2\nroot: 2\n0::${dir.slice(mount!.length)}\n`);
    expect(r.err).toContain("Permission denied");
  });
});
