// The built binary's command-line contract: --version, version, --help on every verb, exit codes,
// errors on stderr naming the bad input, and no configuration picked up from the working directory.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { rootCommand } from "../../src/cli/main.ts";
import type { Command } from "../../src/cli/command.ts";
import { VERSION } from "../../src/version.ts";
import { landlockAbi } from "../../src/runtime/libc.ts";

const T = 20_000;

/** kTLS on this host, looked up here rather than by the code under test: yes, loadable or no. */
function ktlsHere(release: string): string {
  let ulps = "";
  try {
    ulps = readFileSync("/proc/sys/net/ipv4/tcp_available_ulp", "utf8");
  } catch {}
  if (ulps.split(/\s+/).includes("tls") || existsSync("/sys/module/tls")) return "yes";
  const dir = `/lib/modules/${release}/kernel/net/tls`;
  return existsSync(dir) && readdirSync(dir).some((n) => /^tls\.ko/.test(n)) ? "loadable" : "no";
}

function allPaths(cmd: Command, path: string[] = []): string[][] {
  return [path, ...(cmd.subcommands ?? []).flatMap((c) => allPaths(c, [...path, c.name]))];
}

describe("version", () => {
  test("--version prints one line with the version and a commit", async () => {
    const r = await tidegate(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^tidegate ${VERSION.replace(/\./g, "\\.")} \\(([0-9a-f]{12}(-dirty)?|unknown)\\)\\n$`));
  }, T);

  test("version reports the Bun version, the embedded libbpf's version, and the host's cgroup2, bpffs, BTF, kTLS and Landlock", async () => {
    const r = await tidegate(["version", "--json"]);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.version).toBe(VERSION);
    expect(info.bun).toMatch(/^1\.4\./);
    expect(info.libbpf).toEqual({ version: expect.stringMatching(/^1\.\d+(\.\d+)?$/), source: "embedded", unavailable: null });
    // the copy embedded at build time is this machine's libbpf1 package (scripts/build.ts)
    const deb = Bun.which("dpkg-query") === null ? "" : Bun.spawnSync(["dpkg-query", "-W", "-f", "${Version}", "libbpf1"]).stdout.toString();
    if (deb !== "") expect(deb.replace(/^\d+:/, "")).toStartWith(`${info.libbpf.version}.`);
    expect(Object.keys(info.host).sort()).toEqual(["bpffs", "btf", "cgroup2", "kernel", "ktls", "landlock"]);
    // the kernel's own answer, asked from this process
    const abi = landlockAbi();
    expect(info.host.landlock).toEqual({ abi, keeps_workloads_apart: abi >= 6 });
    expect(info.host.btf).toBe(existsSync("/sys/kernel/btf/vmlinux"));
    expect(info.host.ktls).toMatchObject({ support: ktlsHere(info.host.kernel), used_by_tidegate: false });
    const text = await tidegate(["version"]);
    expect(text.stdout).toContain("cgroup2");
    expect(text.stdout).toContain(`\n  libbpf   ${info.libbpf.version} (embedded)\n`);
    expect(text.stdout).toContain(`\n  ktls     ${ktlsHere(info.host.kernel)} (`);
    expect(text.stdout).toContain("(tidegate does not use it yet)\n");
    expect(text.stdout).toContain(abi >= 6 ? `\n  landlock ABI ${abi} (each workload in a domain of its own` : "\n  landlock ");
  }, T);
});

describe("help", () => {
  for (const path of allPaths(rootCommand)) {
    test(`tidegate ${[...path, "--help"].join(" ")} prints usage and exits 0`, async () => {
      const r = await tidegate([...path, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toStartWith(`usage: tidegate ${path.length ? path.join(" ") : ""}`.trimEnd());
      expect(r.stdout).toContain("--instance NAME");
      expect(r.stderr).toBe("");
    }, T);
  }

  test("no arguments prints help on stderr and exits 2", async () => {
    const r = await tidegate([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("usage: tidegate");
  }, T);
});

describe("usage errors exit 2 and name the bad input", () => {
  const cases: [string[], string][] = [
    [["frobnicate"], '"frobnicate"'],
    [["svid", "frob"], '"frob"'],
    [["svid"], "needs a command"],
    [["version", "--bogus"], '"--bogus"'],
    [["svid", "inspect"], "needs a FILE"],
    [["svid", "inspect", "a", "b"], "one FILE"],
    [["svid", "verify", "x.pem"], "--bundle"],
    [["--instance", "Bad_Name", "version"], '"Bad_Name"'],
    [["svid", "verify", "--bundle", "b", "--at", "yesterday", "x"], '"yesterday"'],
    // a selector no attestor gives is refused before the server is asked (no server runs here)
    [["entry", "create", "--spiffe-id", "spiffe://example.org/x", "--node", "n", "--selector", "unix:uid:abc"], '--selector: selector "unix:uid:abc": the value of unix:uid must be a decimal id'],
    [["entry", "create", "--spiffe-id", "spiffe://example.org/x", "--node", "n", "--selector", "unix:uid:1000", "--selector", "tidgate:workload:x"], 'selector "tidgate:workload:x" has type "tidgate", which no attestor gives (types: unix, cgroup, container, k8s, tidegate); did you mean tidegate?'],
    [["entry", "create", "--spiffe-id", "spiffe://example.org/x", "--node", "n", "--selector", "bogus:thing"], 'selector "bogus:thing" has type "bogus"'],
  ];
  for (const [args, needle] of cases) {
    test(`tidegate ${args.join(" ")}`, async () => {
      const r = await tidegate(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(needle);
      expect(r.stderr).toContain("--help");
    }, T);
  }

  test("a mistake found while routing points to the help of the command routed so far", async () => {
    const sub = await tidegate(["svid", "frob"]);
    expect(sub.stderr).toBe('tidegate svid: unknown command "frob" for tidegate svid\nrun \'tidegate svid --help\' for usage\n');
    const opt = await tidegate(["policy", "explain", "--sni", "x"]);
    expect(opt.code).toBe(2);
    expect(opt.stderr).toBe('tidegate policy explain: unknown option "--sni"\nrun \'tidegate policy explain --help\' for usage\n');
  }, T);

  test("TIDEGATE_INSTANCE is validated like --instance", async () => {
    const r = await tidegate(["version"], { env: { TIDEGATE_INSTANCE: "../etc" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('"../etc"');
  }, T);
});

describe("a missing file is a failure naming the file", () => {
  test("svid inspect /nonexistent exits 1", async () => {
    const r = await tidegate(["svid", "inspect", "/nonexistent/leaf.pem"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('"/nonexistent/leaf.pem": no such file');
    expect(r.stderr).toContain("[input_unreadable]");
  }, T);
});

describe("tidegate run without an agent", () => {
  test("says once that it cannot reach the agent, naming the socket, and exits 1", async () => {
    const runDir = mkdtempSync(join(tmpdir(), "tidegate-test-cli-run-"));
    try {
      const r = await tidegate(["run", "--instance", "e2e-cli-noagent", "--run-dir", runDir, "--workload", "w", "--", "/bin/true"]);
      expect(r.code).toBe(1);
      expect(r.stderr.match(/cannot reach the agent/g)).toHaveLength(1);
      expect(r.stderr).toContain(join(runDir, process.getuid?.() === 0 ? "agent.sock" : "run.sock"));
      expect(r.stderr).toContain("is it running");
      expect(r.stderr).toContain("[run_agent]");
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  }, T);
});

describe("the binary ignores .env and bunfig.toml in its working directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-cwd-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("a hostile .env and bunfig.toml change nothing", async () => {
    // Each would be noticed if loaded: the instance name is invalid (exit 2), and the preload
    // script writes a marker file.
    writeFileSync(join(dir, ".env"), "TIDEGATE_INSTANCE=Not Valid\n");
    writeFileSync(join(dir, "preload.ts"), `require("node:fs").writeFileSync(${JSON.stringify(join(dir, "pwned"))}, "x");\n`);
    writeFileSync(join(dir, "bunfig.toml"), 'preload = ["./preload.ts"]\n');
    const r = await tidegate(["version"], { cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, "pwned"))).toBe(false);
  }, T);
});
