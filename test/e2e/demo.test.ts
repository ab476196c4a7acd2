// Issue 11 end to end (root; CI runs it): `tidegate demo`, the README's main job.
//  - The built binary's demo, under its own instance: every step's claim and the exit code, and
//    nothing left behind (cgroup, pins, its folder).
//  - The README's first command, in a fresh clone of this repository, with a temporary prefix
//    (and no systemd unit) and its own instance, in a network namespace of its own: install.sh
//    builds and installs, and the installed binary's demo passes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { probeHost } from "../../src/runtime/host.ts";
import { REPO, tidegate } from "../helpers/binary.ts";
import { DEMO_MARKERS } from "../../src/demo/demo.ts";

const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && !process.env.CI) console.warn("e2e demo: skipped (needs root and cgroup v2)");

const demoFolders = () => new Set(readdirSync(tmpdir()).filter((n) => n.startsWith("tidegate-demo-")));

/** The claims a passing demo prints, in order. */
function expectPassingDemo(out: string, instance: string): void {
  const expected = [
    `as instance ${instance}`,
    "[1/6] trust domain demo.internal",
    "workloads applied as entries of node",
    "[2/6] a stand-in third-party API, https://api.forecast.demo:",
    "[3/6] agent demo-agent starts the forecast MCP server",
    "tools/list: get_forecast, fetch_url",
    "delete_all_forecasts is hidden by stdio rule agent-uses-forecast: ok",
    "holds no token: ok",
    '[4/6] get_forecast Lisbon -> 200 {"city":"Lisbon"',
    "which saw 1 request(s) with the right token: ok",
    "[5/6] fetch_url http://127.0.0.1:",
    "(no rule names this host) -> 403 tidegate: no_rule",
    "denied; the host received 0 request(s): ok",
    "[6/6] delete_all_forecasts -> JSON-RPC error -32001: tidegate: tool delete_all_forecasts is denied by rule agent-uses-forecast",
    "the server never received it: ok",
    "audit trail (",
    "http_request",
    "injected=forecast_token",
    "reason=no_rule",
    "tool=delete_all_forecasts",
    "reason=tool_denied",
    "ok: the chain is intact",
    `pins and the cgroup of instance ${instance} removed`,
    "demo passed: 6 of 6 checks hold",
  ];
  let at = 0;
  for (const e of expected) {
    const i = out.indexOf(e, at);
    if (i < 0) throw new Error(`the demo's output lacks ${JSON.stringify(e)} after offset ${at}:\n${out}`);
    at = i + e.length;
  }
  expect(out).not.toContain("FAILED");
}

function expectNothingLeft(instance: string): void {
  expect(existsSync(join(mount!, `tidegate-${instance}`))).toBe(false);
  expect(existsSync(`/sys/fs/bpf/tidegate-${instance}`)).toBe(false);
  // Its marker goes, and the markers' folder with it when no other demo's marker is in it.
  expect(existsSync(join(DEMO_MARKERS, instance))).toBe(false);
  if (!existsSync(DEMO_MARKERS)) return;
  expect(readdirSync(DEMO_MARKERS).length).toBeGreaterThan(0);
}

describe.skipIf(!can)("tidegate demo", () => {
  test("runs the local scenario, checks every claim, prints and verifies the audit trail, and cleans up", async () => {
    const before = demoFolders();
    const r = await tidegate(["demo", "--instance", "e2e-demo"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expectPassingDemo(r.stdout, "e2e-demo");
    // The token is random per run; no line names a value after "Bearer".
    expect(r.stdout).not.toMatch(/Bearer [A-Za-z0-9_-]{8,}/);
    expectNothingLeft("e2e-demo");
    expect([...demoFolders()].filter((n) => !before.has(n))).toEqual([]);
  }, 60_000);

  test("--keep keeps its folder, with the audit log in it", async () => {
    const r = await tidegate(["demo", "--keep", "--instance", "e2e-demo"]);
    expect(r.code).toBe(0);
    const kept = /kept (\/\S+tidegate-demo-[A-Za-z0-9]+) /.exec(r.stdout)?.[1];
    expect(kept).toBeDefined();
    try {
      expect(readdirSync(join(kept!, "audit")).some((n) => n.endsWith(".jsonl"))).toBe(true);
      expectNothingLeft("e2e-demo");
    } finally {
      rmSync(kept!, { recursive: true, force: true });
    }
  }, 60_000);

  test("refuses an instance in use and leaves it running; TIDEGATE_INSTANCE does not pick the demo's instance", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tidegate-test-demolive-"));
    const flags = ["--instance", "e2e-demolive", "--config", join(dir, "tidegate.yaml"), "--server-config", join(dir, "server.yaml"), "--state-dir", join(dir, "state"), "--run-dir", join(dir, "run"), "--audit-dir", join(dir, "audit")];
    try {
      expect((await tidegate(["up", ...flags])).code).toBe(0);
      const r = await tidegate(["demo", "--instance", "e2e-demolive"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("[demo_instance_in_use]");
      expect(r.stderr).toContain("instance e2e-demolive is in use");
      expect(r.stdout).toBe("");
      expect(existsSync("/sys/fs/bpf/tidegate-e2e-demolive")).toBe(true);
      expect((await tidegate(["status", ...flags])).code).toBe(0);
      // The environment's instance is the one this shell works with; the demo takes --instance only.
      const viaEnv = await tidegate(["demo", "--instance", "e2e-demo"], { env: { TIDEGATE_INSTANCE: "e2e-demolive" } });
      expect(viaEnv.code).toBe(0);
      expect(viaEnv.stdout).toContain("as instance e2e-demo;");
      expect((await tidegate(["status", ...flags])).code).toBe(0);
    } finally {
      await tidegate(["down", ...flags]);
      await tidegate(["agent", "--uninstall", ...flags]);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("refuses to run as another user than root, saying why", () => {
    const as = Bun.spawnSync(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", join(REPO, "dist", "tidegate"), "demo", "--instance", "e2e-demo"]);
    expect(as.exitCode).toBe(1);
    expect(as.stderr.toString()).toContain("runs as root");
    expect(as.stdout.toString()).toBe("");
  });
});

describe.skipIf(!can)("the README's first command, in a fresh clone", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tidegate-test-readme-"));
    chmodSync(dir, 0o755); // the demo's workloads (nobody, daemon) run the installed binary
  });
  afterAll(async () => {
    await tidegate(["agent", "--uninstall", "--instance", "e2e-readme"]);
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  test("install.sh && tidegate demo, with a temporary prefix and instance, passes the demo", async () => {
    const blocks = [...readFileSync(join(REPO, "README.md"), "utf8").matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trim());
    expect(blocks[0]).toBe("sh install.sh && tidegate demo");
    expect(blocks[1]).toBe("bun run test");
    const clone = join(dir, "tidegate");
    const prefix = join(dir, "prefix");
    const git = Bun.spawnSync(["git", "clone", "--quiet", REPO, clone], { stderr: "pipe" });
    expect(git.exitCode).toBe(0);
    // The README's command, with the test's prefix (no systemd unit written) and instance.
    const command = blocks[0]!
      .replace("sh install.sh", `sh install.sh --prefix ${prefix} --no-unit`)
      .replace("tidegate demo", `${prefix}/bin/tidegate demo --instance e2e-readme`);
    // In a network namespace of its own (only its loopback): nothing leaves the host, and the npm
    // packages come from Bun's cache (the checkout being tested installed them).
    const proc = Bun.spawn(["unshare", "--net", "--", "sh", "-c", `ip link set lo up && ${command}`], {
      cwd: clone,
      stdout: "pipe",
      stderr: "pipe",
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", DEBIAN_FRONTEND: "noninteractive" },
    });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) throw new Error(`the README's first command failed (${code}):\n${out}\n${err}`);
    expect(err).toContain(`install: installed ${prefix}/bin/tidegate`);
    expectPassingDemo(out, "e2e-readme");
    expectNothingLeft("e2e-readme");
  }, 600_000);
});
