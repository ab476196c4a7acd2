// `tidegate up --foreground` as an operator on a bad day meets it (root; CI runs it), under its own
// instance with every place in one temporary folder: a reload (SIGHUP, `systemctl reload`) that
// comes while it starts or while it drains is not the end of it, and a second up of the instance is
// refused by the instance's lock even when the pid file is gone, so it never takes the pid file of
// the up that serves (which `tidegate down` then could not find).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import { probeHost } from "../../src/runtime/host.ts";
import { tidegate } from "../helpers/binary.ts";
import { startTidegate, waitFor, type Running } from "../helpers/processes.ts";

const can = process.getuid?.() === 0 && probeHost().cgroup2 !== null;
if (!can && !process.env.CI) console.warn("e2e up signals: skipped (needs root and cgroup v2)");

const INSTANCE = "e2e-upsig";
const TD = "upsig.internal";
let dir = "";
let flags: string[] = [];
let target: TCPSocketListener<undefined> | null = null;
const pidFile = () => join(dir, "run", "up.pid");

/**
 * The workloads below end their scripts with `; exit 0`: bash execs the last simple command of
 * `-c` in place, and a process that execs another file while its connection is being attested is
 * refused (`attestation_failed`, "executed another file during attestation"), so `...; sleep 3`
 * would lose its connection whenever the exec came first.
 */

/** `up --foreground`, and the moment it said it was ready. */
function foreground(): Running {
  return startTidegate(["up", "--foreground", ...flags]);
}

async function ready(up: Running): Promise<void> {
  await waitFor("up: ready", () => (up.output().includes("up: ready (pid") ? true : undefined), 60_000, 100, up);
}

describe.skipIf(!can)("tidegate up under signals and a second up", () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "tidegate-test-upsig-"));
    chmodSync(dir, 0o711);
    flags = ["--instance", INSTANCE, "--config", join(dir, "tidegate.yaml"), "--server-config", join(dir, "server.yaml"), "--state-dir", join(dir, "state"), "--run-dir", join(dir, "run"), "--audit-dir", join(dir, "audit")];
    // A TCP peer that keeps what it accepts open: a connection in flight through the proxy.
    target = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    writeFileSync(
      join(dir, "tidegate.yaml"),
      [
        `trust_domain: ${TD}`,
        "workloads:",
        `  - { name: holder, id: spiffe://${TD}/holder, user: nobody }`,
        "egress:",
        "  - name: target",
        `    from: spiffe://${TD}/holder`,
        `    to: { cidr: 127.0.0.1/32, port: ${target.port} }`,
        "    action: passthrough",
        "",
      ].join("\n"),
    );
  });
  afterAll(async () => {
    target?.stop(true);
    if (dir === "") return;
    await tidegate(["down", ...flags]);
    await tidegate(["agent", "--uninstall", ...flags]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("SIGHUP while up --foreground starts: it keeps starting, applies the config again once ready, and stops cleanly", async () => {
    const up = foreground();
    await waitFor("the pid file", () => (existsSync(pidFile()) ? true : undefined), 30_000, 5);
    up.proc.kill("SIGHUP");
    await ready(up);
    expect(up.output()).toContain("up: SIGHUP while starting: applying the config again");
    await waitFor("the policy loaded again", () => (up.output().split('"event":"policy_loaded"').length > 2 ? true : undefined), 10_000, 50, up);
    expect(await up.stop("SIGTERM")).toBe(0);
    expect(existsSync(pidFile())).toBe(false);
  }, 90_000);

  test("SIGTERM while a reload is applying the workloads: the reload ends quietly and the stop is clean", async () => {
    for (let round = 0; round < 3; round++) {
      const up = foreground();
      await waitFor("the pid file", () => (existsSync(pidFile()) ? true : undefined), 30_000, 5);
      up.proc.kill("SIGHUP"); // applied once ready: the workloads over HTTP, then the agent's policy
      await ready(up);
      up.proc.kill("SIGTERM");
      expect(await up.ended()).toBe(0);
      expect(up.output()).not.toContain("Error");
      expect(up.output()).toContain('"server_stopped"');
      expect(existsSync(pidFile())).toBe(false);
    }
  }, 120_000);

  test("SIGHUP while up drains a connection: the drain runs to its end, the stop is recorded, nothing is left", async () => {
    const up = foreground();
    await ready(up);
    const holder = startTidegate(["run", ...flags, "--workload", "holder", "--", "/bin/bash", "-c", `for i in $(seq 50); do exec 3<>/dev/tcp/127.0.0.1/${target!.port} && break; sleep 0.1; done; echo CONNECTED; sleep 3; exit 0`]);
    await waitFor("the workload's connection", () => (holder.output().includes("CONNECTED") ? true : undefined), 30_000);
    up.proc.kill("SIGTERM");
    await waitFor("the drain", () => (up.output().includes('"agent_draining"') ? true : undefined), 10_000);
    up.proc.kill("SIGHUP");
    expect(await up.ended()).toBe(0);
    expect(up.output()).toContain('"server_stopped"');
    expect(up.output()).toMatch(/"agent_drained","in_flight":1/);
    for (const f of ["up.pid", "agent.sock", "server.sock"]) expect(existsSync(join(dir, "run", f))).toBe(false);
    expect(await holder.ended()).toBe(0);
  }, 90_000);

  test("a second SIGTERM while up drains ends the drain at once: the held connection is cut (stop_forced), the stop is recorded, nothing is left", async () => {
    const up = foreground();
    await ready(up);
    // holds its connection for longer than the drain's 10 s
    const holder = startTidegate(["run", ...flags, "--workload", "holder", "--", "/bin/bash", "-c", `for i in $(seq 50); do exec 3<>/dev/tcp/127.0.0.1/${target!.port} && break; sleep 0.1; done; echo CONNECTED; sleep 60; exit 0`]);
    try {
      await waitFor("the workload's connection", () => (holder.output().includes("CONNECTED") ? true : undefined), 30_000);
      up.proc.kill("SIGTERM");
      await waitFor("the drain", () => (up.output().includes('"agent_draining"') ? true : undefined), 10_000);
      up.proc.kill("SIGTERM");
      expect(await up.ended()).toBe(0);
      expect(up.output()).toContain("SIGTERM again: ending the connections still in flight now");
      expect(up.output()).toMatch(/"agent_drained","in_flight":1,"finished":0,"cut":1/);
      expect(up.output()).toContain('"server_stopped"');
      for (const f of ["up.pid", "agent.sock", "server.sock"]) expect(existsSync(join(dir, "run", f))).toBe(false);
      const audit = readdirSync(join(dir, "audit")).filter((f) => f.endsWith(".jsonl")).map((f) => readFileSync(join(dir, "audit", f), "utf8")).join("");
      expect(audit).toContain('"reason":"stop_forced"');
      expect(audit).toMatch(/"type":"agent_stop","reason":"stopped","in_flight":1,"finished":0,"cut":1/);
      const verify = await tidegate(["audit", "verify", ...flags]);
      expect(verify.code).toBe(0);
    } finally {
      holder.proc.kill("SIGKILL");
    }
  }, 90_000);

  test("a second up --foreground is refused by the instance's lock, even with the pid file gone, and the first keeps its pid file", async () => {
    const first = foreground();
    await ready(first);
    const line = readFileSync(pidFile(), "utf8");
    rmSync(pidFile()); // removed by hand, or by a clean-up of the run folder
    const second = foreground();
    expect(await second.ended()).toBe(1);
    expect(second.output()).toContain("[up_running]");
    expect(second.output()).toContain(join(dir, "run", "up.lock"));
    // The second never wrote, nor removed, a pid file; put the first's back and down finds it.
    expect(existsSync(pidFile())).toBe(false);
    writeFileSync(pidFile(), line);
    const down = await tidegate(["down", ...flags]);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain(`stopped (pid ${first.proc.pid})`);
    expect(await first.ended()).toBe(0);
    // Its lock went with it: the next up starts.
    const third = foreground();
    await ready(third);
    expect(await third.stop("SIGTERM")).toBe(0);
  }, 120_000);
});
