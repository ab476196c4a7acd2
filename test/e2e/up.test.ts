// Issue 11 end to end (root; CI runs it): `tidegate up` and `tidegate down` with the built binary,
// under their own instance with every place in one temporary folder. up writes the starter config,
// creates the trust domain, joins its agent and goes to the background; a second up is harmless;
// a workload added to the config becomes an identity the agent holds and `tidegate run` uses; an
// operator's own entry survives; down stops it through the pid file, never following a stale one;
// a second up after down reuses everything (no new trust domain, no second join); a workload added
// to the config is held at once, whatever the agent's sync interval.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeHost } from "../../src/runtime/host.ts";
import { BINARY, tidegate } from "../helpers/binary.ts";
import { waitFor } from "../helpers/processes.ts";

const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && !process.env.CI) console.warn("e2e up/down: skipped (needs root and cgroup v2)");

const INSTANCE = "e2e-up";
const TD = "up-test.internal";
let dir = "";
let flags: string[] = [];
const config = () => join(dir, "etc", "tidegate.yaml");
const pidFile = () => join(dir, "run", "up.pid");
/** Running: /proc/PID exists and is not a zombie (an orphan waits for a reaper that may be slow). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Saves the config as many editors do: a new file renamed over the old one (a new inode each time). */
function save(text: string): void {
  writeFileSync(`${config()}.new`, text);
  renameSync(`${config()}.new`, config());
}

async function status(): Promise<any> {
  const r = await tidegate(["status", "--json", ...flags]);
  return r.code === 0 ? JSON.parse(r.stdout) : undefined;
}

describe.skipIf(!can)("tidegate up and down", () => {
  beforeAll(async () => {
    await tidegate(["down", "--instance", INSTANCE]); // leftovers: only ever its own pid file
    await tidegate(["agent", "--uninstall", "--instance", INSTANCE]);
    dir = mkdtempSync(join(tmpdir(), "tidegate-test-up-"));
    chmodSync(dir, 0o711);
    flags = ["--instance", INSTANCE, "--config", join(dir, "etc", "tidegate.yaml"), "--server-config", join(dir, "etc", "server.yaml"), "--state-dir", join(dir, "state"), "--run-dir", join(dir, "run"), "--audit-dir", join(dir, "audit")];
  });
  afterAll(async () => {
    if (dir === "") return;
    await tidegate(["down", ...flags]);
    await tidegate(["agent", "--uninstall", ...flags]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("the first up writes a starter config, creates the trust domain, joins, and says what to do next", async () => {
    const r = await tidegate(["up", "--trust-domain", TD, ...flags]);
    expect(r.code).toBe(0);
    for (const step of ["starting in the background", "wrote a starter config", `creating trust domain ${TD}`, "joining the agent as node", "ready (pid"]) expect(r.stderr).toContain(step);
    expect(r.stdout).toContain(`tidegate is up: trust domain ${TD}`);
    expect(r.stdout).toContain(`tidegate status ${flags.join(" ")}`);
    expect(r.stdout).toContain(`tidegate down ${flags.join(" ")}`);
    expect(statSync(join(dir, "state", "up.log")).mode & 0o777).toBe(0o600);
    const check = await tidegate(["policy", "check", config()]);
    expect(check.code).toBe(0);
    expect(readFileSync(config(), "utf8")).toContain("DEFAULT DENY");
    const s = await status();
    expect(s.healthy).toBe(true);
    expect(s.trust_domain).toBe(TD);
    expect(s.capture.policy.file).toBe(config());
    expect(s.audit).toMatchObject({ healthy: true, dir: join(dir, "audit") });
    const text = await tidegate(["status", ...flags]);
    expect(text.stdout).toMatch(/^health +healthy$/m);
    expect(text.stdout).toMatch(new RegExp(`^audit +ok, \\d+ events, ${join(dir, "audit")}$`, "m"));
    expect(text.stdout).toContain("rules (since generation 1");
    // Once serving, it dropped the compiled code of its start-up (src/runtime/compiled-code.ts).
    const dropped = await waitFor("up's startup_code_dropped", () => readFileSync(join(dir, "state", "up.log"), "utf8").split("\n").slice(0, -1).find((l) => l.includes('"startup_code_dropped"')));
    expect(JSON.parse(dropped)).toMatchObject({ component: "up" });
    const [pid, start] = readFileSync(pidFile(), "utf8").trim().split(" ").map(Number) as [number, number];
    expect(alive(pid)).toBe(true);
    expect(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[19]).toBe(String(start));
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toContain("--foreground");
  }, 60_000);

  test("a second up is harmless: it says it runs and changes nothing", async () => {
    const before = readFileSync(pidFile(), "utf8");
    const text = readFileSync(config(), "utf8");
    const r = await tidegate(["up", ...flags]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`already running (pid ${before.split(" ")[0]})`);
    expect(readFileSync(pidFile(), "utf8")).toBe(before);
    expect(readFileSync(config(), "utf8")).toBe(text);
  });

  test("a workload added to the config becomes an identity the agent holds, and tidegate run uses it", async () => {
    const op = await tidegate(["entry", "create", "--spiffe-id", `spiffe://${TD}/operator-made`, "--parent", (await status()).spiffe_id, "--selector", "unix:uid:4242", "--json", ...flags]);
    expect(op.code).toBe(0);
    save(readFileSync(config(), "utf8").replace("workloads: []", `workloads:\n  - { name: worker, id: spiffe://${TD}/worker, user: nobody }`));
    const s = await waitFor("the worker's SVID", async () => {
      const st = await status();
      return st?.svids.some((v: any) => v.spiffe_id === `spiffe://${TD}/worker`) ? st : undefined;
    }, 20_000);
    expect(s.entries.map((e: any) => e.spiffe_id).sort()).toEqual([`spiffe://${TD}/operator-made`, `spiffe://${TD}/worker`]);
    const worker = s.entries.find((e: any) => e.spiffe_id === `spiffe://${TD}/worker`);
    expect(worker.selectors.map((x: any) => (typeof x === "string" ? x : `${x.type}:${x.value}`))).toEqual(["tidegate:workload:worker"]);
    const run = await tidegate(["run", ...flags, "--workload", "worker", "--", "/usr/bin/id", "-un"]);
    expect(run.stderr).toBe("");
    expect(run.stdout.trim()).toBe("nobody");
    expect(run.code).toBe(0);
    // Dropping the workload (a second save by rename: still heard) removes the entry up made,
    // never the operator's.
    save(readFileSync(config(), "utf8").replace(/workloads:\n {2}- \{ name: worker[^\n]*/, "workloads: []"));
    const after = await waitFor("the worker's entry to go", async () => {
      const st = await status();
      return st && !st.entries.some((e: any) => e.spiffe_id === `spiffe://${TD}/worker`) ? st : undefined;
    }, 20_000);
    expect(after.entries.map((e: any) => e.spiffe_id)).toEqual([`spiffe://${TD}/operator-made`]);
  }, 60_000);

  test("an inbound listener added to the config is served: up registers its id, for the agent alone", async () => {
    const free = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = free.port;
    free.stop(true);
    const text = readFileSync(config(), "utf8");
    const id = `spiffe://${TD}/svc/echo`;
    save(`${text}\ninbound:\n  - { name: echo-in, id: ${id}, listen: "127.0.0.1:${port}", forward: "127.0.0.1:9", allow: "spiffe://${TD}/**" }\n`);
    try {
      const s = await waitFor("the listener to listen", async () => {
        const st = await status();
        return st?.capture?.inbound?.some((l: any) => l.rule === "echo-in" && l.state === "listening") ? st : undefined;
      }, 20_000);
      const entry = s.entries.find((e: any) => e.spiffe_id === id);
      expect(entry.selectors.map((x: any) => (typeof x === "string" ? x : `${x.type}:${x.value}`))).toEqual(["tidegate:inbound:echo-in"]);
      const open = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      open.end();
    } finally {
      save(text);
    }
    const after = await waitFor("the listener's entry to go", async () => {
      const st = await status();
      return st && !st.entries.some((e: any) => e.spiffe_id === id) ? st : undefined;
    }, 20_000);
    expect(after.capture.inbound).toEqual([]);
  }, 60_000);

  test("a second agent of the same instance is refused while up runs, and up keeps serving", async () => {
    const r = await tidegate(["agent", ...flags]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("[agent_running]");
    expect((await status())?.healthy).toBe(true);
  }, 60_000);

  test("down stops it and removes the pid file; a second down is harmless", async () => {
    const pid = Number(readFileSync(pidFile(), "utf8").split(" ")[0]);
    const r = await tidegate(["down", ...flags]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`stopped (pid ${pid})`);
    expect(r.stdout).toContain("tidegate agent --uninstall");
    expect(alive(pid)).toBe(false);
    expect(existsSync(pidFile())).toBe(false);
    expect(await status()).toBeUndefined();
    const again = await tidegate(["down", ...flags]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("not running");
  }, 60_000);

  test("down and up never follow a stale pid file to another process, even one named 'up --foreground'", async () => {
    // A reused pid with the right start time and "up --foreground" in its arguments, but not this
    // binary: what a local user could arrange after a crash left the file behind.
    const bystander = Bun.spawn(["/bin/sh", "-c", "sleep 30; :", "up", "--foreground", ...flags]);
    try {
      await Bun.sleep(50);
      const start = readFileSync(`/proc/${bystander.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[19];
      writeFileSync(pidFile(), `${bystander.pid} ${start}\n`);
      const r = await tidegate(["down", ...flags]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("not running");
      expect(alive(bystander.pid)).toBe(true);
      expect(existsSync(pidFile())).toBe(false);
      // A pid file of the old form (no start time) is not followed either.
      writeFileSync(pidFile(), `${bystander.pid}\n`);
      expect((await tidegate(["down", ...flags])).stdout).toContain("not running");
      expect(alive(bystander.pid)).toBe(true);
    } finally {
      bystander.kill();
    }
  });

  test("SIGTERM while up --foreground starts: it unwinds, removes its pid file and sockets, exits 0", async () => {
    const fg = Bun.spawn([join(import.meta.dir, "..", "..", "dist", "tidegate"), "up", "--foreground", ...flags], { stdout: "pipe", stderr: "pipe" });
    await waitFor("the pid file", () => (existsSync(pidFile()) ? true : undefined), 10_000);
    fg.kill("SIGTERM");
    const code = await fg.exited;
    const err = await new Response(fg.stderr).text();
    expect(code).toBe(0);
    expect(err).toMatch(/SIGTERM( while starting: stopped|: stopping the agent and the server)/);
    expect(existsSync(pidFile())).toBe(false);
    expect(existsSync(join(dir, "run", "agent.sock"))).toBe(false);
    expect(existsSync(join(dir, "run", "server.sock"))).toBe(false);
  }, 60_000);

  test("up after down reuses the trust domain and the agent's identity", async () => {
    const node = JSON.parse(readFileSync(join(dir, "state", "agent", "agent.json"), "utf8"));
    const r = await tidegate(["up", ...flags]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("creating trust domain");
    expect(r.stderr).not.toContain("wrote a starter config");
    expect(r.stderr).toContain("joined before");
    const s = await status();
    expect(s.spiffe_id).toBe(node.spiffe_id);
    expect(s.trust_domain).toBe(TD);
    expect((await tidegate(["down", ...flags])).code).toBe(0);
  }, 60_000);

  test("a workload added while the agent's sync interval is long is held at once: up has the agent sync when it applies the workloads", async () => {
    const text = readFileSync(config(), "utf8");
    expect(text).not.toMatch(/^agent:/m);
    writeFileSync(config(), `${text}\nagent:\n  sync_interval: 1h\n`);
    try {
      expect((await tidegate(["up", ...flags])).code).toBe(0);
      const id = `spiffe://${TD}/prompt`;
      save(readFileSync(config(), "utf8").replace("workloads: []", `workloads:\n  - { name: prompt, id: ${id}, user: nobody }`));
      // Left to its interval, the agent would sync an hour from now.
      const s = await waitFor("the new workload's SVID", async () => ((await status())?.svids.some((v: any) => v.spiffe_id === id) ? true : undefined), 20_000);
      expect(s).toBe(true);
      const run = await tidegate(["run", ...flags, "--workload", "prompt", "--", "/usr/bin/id", "-un"]);
      expect(run.stderr).toBe("");
      expect(run.stdout.trim()).toBe("nobody");
    } finally {
      writeFileSync(config(), text);
      expect((await tidegate(["down", ...flags])).code).toBe(0);
    }
  }, 60_000);

  test("after an upgrade replaced the binary by a rename, down stops the old up and up starts the new one; meanwhile the old agent starts its own launcher", async () => {
    // install.sh's way: the new file renamed over the old; the running up keeps the old, unlinked one.
    const bin = join(dir, "bin");
    mkdirSync(bin, { recursive: true });
    chmodSync(bin, 0o755);
    const installed = join(bin, "tidegate");
    const install = (from = BINARY) => {
      copyFileSync(from, `${installed}.new`);
      chmodSync(`${installed}.new`, 0o755);
      renameSync(`${installed}.new`, installed);
    };
    // A workload nobody may run through run.sock: there the agent starts the launcher itself.
    const text = readFileSync(config(), "utf8");
    save(`${text.replace("workloads: []", "workloads:\n  - { name: runner, id: spiffe://" + TD + "/runner, user: nobody, run_by: { users: [nobody] } }")}\nagent: { run_group: nogroup }\n`);
    const asNobody = (binary: string) => {
      const p = Bun.spawnSync(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", binary, "run", ...flags, "--workload", "runner", "--", "/usr/bin/id", "-un"], { env: { PATH: "/usr/bin:/bin" } });
      return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
    };
    const at = async (args: string[]) => {
      const p = Bun.spawn([installed, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return { stdout, stderr, code };
    };
    install();
    expect((await at(["up", ...flags])).code).toBe(0);
    const old = Number(readFileSync(pidFile(), "utf8").split(" ")[0]);
    let now = 0;
    try {
      await waitFor("the runner's SVID", async () => ((await status())?.svids.some((v: any) => v.spiffe_id === `spiffe://${TD}/runner`) ? true : undefined), 20_000);
      install(); // the upgrade
      expect(readlinkSync(`/proc/${old}/exe`)).toBe(`${installed} (deleted)`);
      // Before down && up, the path holds another version: here one that only leaves a mark, so
      // the old agent must not start its launcher from the path.
      const stub = join(dir, "stub.sh");
      const mark = join(dir, "stub-ran");
      writeFileSync(stub, `#!/bin/sh\ntouch ${mark}\nexit 97\n`);
      install(stub);
      const ran = asNobody(BINARY);
      expect([ran.stdout.trim(), ran.code, ran.stderr]).toEqual(["nobody", 0, ""]);
      expect(existsSync(mark)).toBe(false);
      install();
      const again = await at(["up", ...flags]);
      expect([again.code, again.stderr]).toEqual([0, `up: already running (pid ${old}); nothing to do\n`]);
      const down = await at(["down", ...flags]);
      expect(down.code).toBe(0);
      expect(down.stdout).toContain(`stopped (pid ${old}).`);
      expect(alive(old)).toBe(false);
      expect((await at(["up", ...flags])).code).toBe(0);
      now = Number(readFileSync(pidFile(), "utf8").split(" ")[0]);
      expect(readlinkSync(`/proc/${now}/exe`)).toBe(installed);
      expect((await at(["down", ...flags])).stdout).toContain(`stopped (pid ${now}).`);
    } finally {
      // a failure must not leave either running: later tests and runs need the instance
      for (const pid of [old, now]) if (pid > 0 && alive(pid)) process.kill(pid, "SIGKILL");
      save(text);
    }
  }, 90_000);

  test("a config that names another trust domain than the state is refused, and nothing is left running", async () => {
    const text = readFileSync(config(), "utf8");
    writeFileSync(config(), text.replaceAll(TD, "other.internal"));
    try {
      const r = await tidegate(["up", ...flags]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("trust domains are never changed in place");
      expect(existsSync(pidFile())).toBe(false);
      expect(await status()).toBeUndefined();
    } finally {
      writeFileSync(config(), text);
    }
  }, 60_000);

  test("a bad --trust-domain writes no config", async () => {
    const other = join(dir, "other", "tidegate.yaml");
    const r = await tidegate(["up", "--foreground", "--trust-domain", "Bad TD", ...flags.map((f) => (f === config() ? other : f))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('tidegate up: --trust-domain: spiffeid: "Bad TD"');
    expect(existsSync(other)).toBe(false);
  }, 60_000);

  test("with its cgroup removed under it, the agent refuses to run a workload instead of running it unenforced", async () => {
    expect((await tidegate(["up", ...flags])).code).toBe(0);
    try {
      const root = join(mount!, `tidegate-${INSTANCE}`);
      for (const d of [join(root, "workloads"), root]) {
        if (!existsSync(d)) continue;
        for (const sub of d === root ? [] : readdirSync(d, { withFileTypes: true })) if (sub.isDirectory()) rmdirSync(join(d, sub.name));
        rmdirSync(d);
      }
      const marker = join(dir, "ran");
      const run = await tidegate(["run", ...flags, "--workload", "late", "--", "/usr/bin/touch", marker]);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toContain("cgroup_lost");
      expect(existsSync(marker)).toBe(false);
      expect(existsSync(root)).toBe(false);
    } finally {
      await tidegate(["down", ...flags]);
      await tidegate(["agent", "--uninstall", ...flags]);
    }
  }, 60_000);

  test("a config others could change is refused by up and by the agent, naming why", async () => {
    chmodSync(config(), 0o664);
    try {
      const up = await tidegate(["up", "--foreground", ...flags]);
      expect(up.code).toBe(1);
      expect(up.stderr).toContain("[config_untrusted]");
      expect(up.stderr).toContain("is writable by its group (mode 664)");
      const agent = await tidegate(["agent", ...flags]);
      expect(agent.code).toBe(1);
      expect(agent.stderr).toContain("[config_untrusted]");
      expect(existsSync(pidFile())).toBe(false);
    } finally {
      chmodSync(config(), 0o644);
    }
  }, 60_000);

  test("up and down refuse non-root callers", async () => {
    const r = await tidegate(["up", ...flags, "--help"]);
    expect(r.code).toBe(0);
    const as = Bun.spawnSync(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", join(import.meta.dir, "..", "..", "dist", "tidegate"), "up", ...flags]);
    expect(as.exitCode).toBe(1);
    expect(as.stderr.toString()).toContain("runs as root");
  });
});
