// Bad flag values are usage errors (exit 2) found at the command line, before a verb starts,
// spawns, writes or logs anything; a URL's user name or password is never repeated. Run in this
// process through main(), on temporary places of instance "uxcli".
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "./main.ts";
import { serveUnix } from "../runtime/unix-http.ts";
import { quoteUrl } from "../errors.ts";
import { parseServerUrl } from "../agent/server-client.ts";

const T = 20_000;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function places(): { dir: string; flags: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-uxcli-"));
  dirs.push(dir);
  const flags = ["--instance", "uxcli", "--state-dir", join(dir, "state"), "--run-dir", join(dir, "run"), "--config", join(dir, "tidegate.yaml"), "--server-config", join(dir, "server.yaml"), "--audit-dir", join(dir, "audit"), "--bpf-dir", join(dir, "bpf"), "--cgroup", "uxcli-none"];
  return { dir, flags };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

describe("up checks --timeout and --trust-domain before it starts anything", () => {
  for (const [flag, value] of [["--timeout", "abc"], ["--trust-domain", "Bad.Domain"]] as const) {
    test(`up ${flag} ${value}: exit 2 naming the flag, no background process, no state folder`, async () => {
      const p = places();
      const r = await run(["up", flag, value, ...p.flags]);
      expect(r.code).toBe(2);
      expect(r.err).toStartWith(`tidegate up: ${flag}`);
      expect(r.err).toContain(JSON.stringify(value));
      expect(r.err).not.toContain("tidegate up: up:");
      expect(r.err).not.toContain("starting in the background");
      expect(existsSync(join(p.dir, "state"))).toBe(false);
      expect(existsSync(join(p.dir, "tidegate.yaml"))).toBe(false);
    }, T);
  }

  test("up --foreground --trust-domain 'Bad TD' is a usage error too, and writes no config", async () => {
    const p = places();
    const r = await run(["up", "--foreground", "--trust-domain", "Bad TD", ...p.flags]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--trust-domain: spiffeid: "Bad TD"');
    expect(existsSync(join(p.dir, "tidegate.yaml"))).toBe(false);
    expect(existsSync(join(p.dir, "run"))).toBe(false);
  }, T);
});

describe("agent --server", () => {
  test("a URL with a user name and password: exit 2, nothing logged, the password never repeated", async () => {
    const p = places();
    const r = await run(["agent", "--no-capture", "--server", "https://user:s3cretpw@127.0.0.1:1/path", "--join-token", "x", "--server-fingerprint", "ab".repeat(32), ...p.flags]);
    expect(r.code).toBe(2);
    expect(r.err).toStartWith("tidegate agent: --server: the URL for 127.0.0.1:1 carries a user name or password (not repeated)");
    expect(r.err).not.toContain("s3cretpw");
    expect(r.err).not.toContain("user:");
    expect(r.err).not.toContain("agent_start");
    expect(existsSync(join(p.dir, "state"))).toBe(false);
  }, T);

  for (const bad of ["notaurl", "http://127.0.0.1:1", "https://127.0.0.1:1/path", "https://alice@127.0.0.1:1", "alice:pw@ not a url"]) {
    test(`--server ${JSON.stringify(bad)} is a usage error before the agent starts`, async () => {
      const p = places();
      const r = await run(["agent", "--no-capture", "--server", bad, "--join-token", "x", "--server-fingerprint", "ab".repeat(32), ...p.flags]);
      expect(r.code).toBe(2);
      expect(r.err).toContain("--server");
      expect(r.err).not.toContain("agent_start");
      if (bad.includes("@")) expect(r.err).not.toContain("alice");
    }, T);
  }

  test("quoteUrl shows a URL without its user name and password, and unparsable text with '@' not at all", () => {
    expect(quoteUrl("https://host:1/x")).toBe('"https://host:1/x"');
    expect(quoteUrl("https://u:pw@host:1/x")).toBe(`"https://host:1" (the rest not repeated: it has an '@' and may hold a password)`);
    expect(quoteUrl("u:pw@ not a url")).toBe("(not repeated: it has an '@' and may hold a password)");
    expect(quoteUrl("notaurl")).toBe('"notaurl"');
  });

  test("the agent's own check (a config's agent.server) does not repeat the password either", () => {
    expect(() => parseServerUrl("https://u:s3cretpw@host:1/x")).toThrow(/^agent: --server "https:\/\/host:1" \(the rest not repeated/);
  });
});

describe("bad flag values of other verbs exit 2 at the command line", () => {
  test("server init --trust-domain 'Bad Domain' names the flag and the value", async () => {
    const p = places();
    const r = await run(["server", "init", "--trust-domain", "Bad Domain", ...p.flags]);
    expect(r.code).toBe(2);
    expect(r.err).toStartWith('tidegate server init: --trust-domain: spiffeid: "Bad Domain"');
    expect(existsSync(join(p.dir, "state", "server"))).toBe(false);
  }, T);

  test("server init --trust-domain spiffe://example.org says it initialised example.org (what it stores)", async () => {
    const p = places();
    const r = await run(["server", "init", "--trust-domain", "spiffe://example.org", ...p.flags]);
    expect(r.code).toBe(0);
    expect(r.out).toStartWith("initialised trust domain example.org in ");
  }, T);

  test("attest --kubelet-url notaurl, or with a password, is a usage error that does not repeat the password", async () => {
    const p = places();
    const bad = await run(["attest", "--pid", String(process.pid), "--kubelet", "--kubelet-url", "notaurl", ...p.flags]);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--kubelet-url "notaurl" is not a URL');
    const creds = await run(["attest", "--pid", String(process.pid), "--kubelet", "--kubelet-url", "https://u:s3cretpw@127.0.0.1:10250", ...p.flags]);
    expect(creds.code).toBe(2);
    expect(creds.err).toContain("--kubelet-url: the URL for 127.0.0.1:10250 carries a user name or password");
    expect(creds.err).not.toContain("s3cretpw");
  }, T);
});

describe("agent --uninstall while the agent runs", () => {
  test("is a state error (exit 1, [agent_running]) that says how to stop the agent", async () => {
    const p = places();
    const sock = join(p.dir, "run", "agent.sock");
    const fake = serveUnix(sock, () => Response.json({ healthy: true }));
    try {
      const r = await run(["agent", "--uninstall", ...p.flags]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`the agent of this instance is running (it answers on ${sock})`);
      expect(r.err).toContain("SIGTERM");
      expect(r.err).toContain("tidegate down");
      expect(r.err).toEndWith("[agent_running]\n");
      expect(r.err).not.toContain("--help");
    } finally {
      await fake.stop();
    }
  }, T);
});
