// `tidegate policy check` and `tidegate policy explain` from the built binary: the example of
// docs/policy.md checked and explained verbatim, errors with file and line, exit codes, --json,
// and --addr checked against names the policy's dns: setting resolves.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO, tidegate } from "../helpers/binary.ts";

const T = 20_000;
const dir = mkdtempSync(join(tmpdir(), "tidegate-policy-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const doc = readFileSync(join(REPO, "docs", "policy.md"), "utf8");
const example = /```yaml\n([\s\S]*?)```/.exec(doc)![1]!;
writeFileSync(join(dir, "tidegate.yaml"), example);

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const EXTRA = `trust_domain: example.org
egress:
  - name: api
    from: spiffe://example.org/agent/*
    to: { host: api.internal.test, port: 443 }
    action: tls
    ca: ${join(dir, "no-such-ca.pem")}
  - name: tools
    from: spiffe://example.org/agent/*
    to: { host: mcp.internal.test, port: 443 }
    action: intercept
    inject: { headers: { X-Api-Key: "\${secret:mcp_key}" } }
    http: { methods: [POST], paths: ["/mcp"] }
    mcp: { tools: { allow: [search] } }
dns:
  hosts:
    api.internal.test: [192.0.2.10]
`;

describe("tidegate policy check", () => {
  test("the example of docs/policy.md is valid", async () => {
    const r = await tidegate(["policy", "check", "tidegate.yaml"], { cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("ok: tidegate.yaml: trust domain example.org; 1 workload, 3 egress rules, 1 inbound rule, 0 stdio rules, 1 federated trust domain\nsecrets referenced: github_token\n");
    expect(r.code).toBe(0);
  }, T);
  test("--json, and a warning for a file the policy names that is missing here", async () => {
    const path = file("extra.yaml", EXTRA);
    const r = await tidegate(["policy", "check", "--json", path]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ file: path, trust_domain: "example.org", workloads: 0, egress_rules: 2, inbound_rules: 0, stdio_rules: 0, federation: [], secrets: ["mcp_key"] });
    expect(r.stderr).toBe(`warning: egress rule api (line 3): ca: ${join(dir, "no-such-ca.pem")} does not exist here\n`);
  }, T);
  test("users and groups this host lacks are warned about, the file still valid; ones it has are not", async () => {
    const path = file("accounts.yaml", `trust_domain: example.org
agent: { run_group: no-such-group-tg }
workloads:
  - { name: a, id: spiffe://example.org/a, user: no-such-user-tg, run_by: { users: [nobody, ghost-tg], groups: [nogroup, phantoms-tg] } }
  - { name: b, id: spiffe://example.org/b, user: nobody }
`);
    const r = await tidegate(["policy", "check", path]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      [
        "warning: workload a: user: user no-such-user-tg does not exist here",
        "warning: workload a: run_by: user ghost-tg does not exist here",
        "warning: workload a: run_by: group phantoms-tg does not exist here",
        "warning: agent.run_group: group no-such-group-tg is not in /etc/group here, so no caller other than root reaches run.sock",
        "",
      ].join("\n"),
    );
  }, T);
  test("an invalid file: exit 1, file, line, field and code", async () => {
    const path = file("bad.yaml", example.replace("port: 443 }\n    action: intercept\n    inject", "port: 443, prot: udp }\n    action: intercept\n    inject"));
    const r = await tidegate(["policy", "check", path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`tidegate policy check: policy: ${path}:9: egress[0].to.prot: unknown key (allowed: cidr, host, port, proto; did you mean port or proto?) [policy_invalid]\n`);
  }, T);
  test("a selector no attestor gives: exit 1, file, line, field, and what it probably is", async () => {
    const path = file("selectors.yaml", "trust_domain: example.org\nworkloads:\n  - name: w\n    id: spiffe://example.org/w\n    selectors:\n      - unix:uid:1000\n      - unix:ud:1000\n");
    const r = await tidegate(["policy", "check", path]);
    expect([r.code, r.stdout]).toEqual([1, ""]);
    expect(r.stderr).toBe(`tidegate policy check: policy: ${path}:7: workloads[0].selectors[1]: selector "unix:ud:1000": unix has no key "ud" (unix gives unix:uid, unix:user, unix:gid, unix:group, unix:supplementary_gid, unix:supplementary_group, unix:path, unix:sha256); did you mean unix:uid? [policy_invalid]\n`);
    const uid = await tidegate(["policy", "check", file("uid.yaml", "trust_domain: example.org\nworkloads:\n  - { name: w, id: spiffe://example.org/w, selectors: ['unix:uid:abc', 'bogus:x'] }\n")]);
    expect(uid.code).toBe(1);
    expect(uid.stderr).toContain(':3: workloads[0].selectors[0]: selector "unix:uid:abc": the value of unix:uid must be a decimal id');
  }, T);
  test("a missing file: exit 1 naming it", async () => {
    const r = await tidegate(["policy", "check", join(dir, "absent.yaml")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("absent.yaml");
    expect(r.stderr).toContain("no such file");
  }, T);
  test("no FILE: usage error", async () => {
    const r = await tidegate(["policy", "check"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("policy check needs exactly one FILE");
  }, T);
});

describe("tidegate agent and the config file", () => {
  test("an invalid config stops the agent before it does anything", async () => {
    const path = file("agent-bad.yaml", "trust_domain: example.org\nagent:\n  sync_interval: soon\n");
    const state = join(dir, "agent-state");
    const r = await tidegate(["agent", "--instance", "policy-cli", "--config", path, "--state-dir", state, "--run-dir", join(dir, "agent-run"), "--audit-dir", join(dir, "agent-audit")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`tidegate agent: policy: ${path}:3: agent.sync_interval: duration: "soon" is not a duration`);
    expect(r.stderr).toContain("[policy_invalid]");
    expect(existsSync(state)).toBe(false);
  }, T);
});

describe("tidegate policy explain", () => {
  test("the examples of docs/policy.md, verbatim (an egress deny, an inbound one)", async () => {
    const blocks = [...doc.matchAll(/\n\$ (tidegate policy explain [^\n]+)\n([\s\S]*?)```/g)];
    expect(blocks.map((b) => b[1]!.includes("--inbound"))).toEqual([true, false]);
    for (const block of blocks) {
      const r = await tidegate(block[1]!.split(" ").slice(1), { cwd: dir });
      expect(r.stdout).toBe(block[2]!);
      expect(r.code).toBe(3);
    }
  }, T);
  test("an allowed tool: exit 0; another tool: exit 3 with the rule", async () => {
    const base = ["policy", "explain", "--policy", "tidegate.yaml", "--from", "spiffe://example.org/agent/a1", "--to", "mcp.partner.com:443"];
    const ok = await tidegate([...base, "--tool", "send_email"], { cwd: dir });
    expect(ok.stdout).toStartWith("decision   allow intercept by rule partner-email (upstream port 443)\nrule       partner-email (line 12)\n");
    expect(ok.code).toBe(0);
    const no = await tidegate([...base, "--tool", "delete_all"], { cwd: dir });
    expect(no.stdout).toStartWith("decision   deny: rule partner-email does not allow this MCP tool\n");
    expect(no.code).toBe(3);
  }, T);
  test("--json, inspect before a request, then the request decided", async () => {
    const path = file("extra2.yaml", EXTRA);
    const base = ["policy", "explain", "--policy", path, "--from", "spiffe://example.org/agent/a1", "--to", "mcp.internal.test:443", "--json"];
    const inspect = await tidegate(base);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ verdict: "inspect", action: null, reason: null, rule: { name: "tools", line: 8 } });
    expect(inspect.code).toBe(0);
    const get = await tidegate([...base, "--method", "GET", "--path", "/mcp?x=1"]);
    expect(JSON.parse(get.stdout)).toEqual({
      verdict: "deny",
      action: null,
      reason: "no_rule",
      rule: null,
      summary: "deny: no rule matches",
      detail: null,
      tried: [
        { name: "api", line: 3, failed: ["to.host"] },
        { name: "tools", line: 8, failed: ["http.methods"] },
      ],
      near_misses: [{ name: "tools", line: 8, field: "http.methods", why: "method GET is not one of POST" }],
    });
    expect(get.code).toBe(3);
  }, T);
  test("--addr: an allow by a host rule holds only for an address the name resolves to", async () => {
    const path = file("extra3.yaml", EXTRA);
    const base = ["policy", "explain", "--policy", path, "--from", "spiffe://example.org/agent/a1", "--to", "api.internal.test:443"];
    const good = await tidegate([...base, "--addr", "192.0.2.10"]);
    expect(good.stdout).toStartWith("decision   allow tls by rule api (upstream port 443)\n");
    expect(good.code).toBe(0);
    const bad = await tidegate([...base, "--addr", "198.51.100.7"]);
    expect(bad.stdout).toStartWith("decision   deny: the original address is not one that rule api's host resolves to\nresolved   api.internal.test resolves to 192.0.2.10, not to 198.51.100.7\n");
    expect(bad.code).toBe(3);
    const json = await tidegate([...base, "--addr", "198.51.100.7", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({ verdict: "deny", reason: "address_not_resolved", detail: "api.internal.test resolves to 192.0.2.10, not to 198.51.100.7" });
    expect(JSON.parse(good.code === 0 ? (await tidegate([...base, "--addr", "192.0.2.10", "--json"])).stdout : "{}").detail).toBeNull();
  }, T);
  test("the policy defaults to --config", async () => {
    const r = await tidegate(["policy", "explain", "--config", join(dir, "tidegate.yaml"), "--from", "spiffe://example.org/x", "--to", "127.0.0.53:53", "--proto", "udp"]);
    expect(r.stdout).toStartWith("decision   allow direct by rule resolver (upstream port 53)\n");
    expect(r.code).toBe(0);
  }, T);
  test("--inbound: an allowed tool, a client allow does not name, and --json", async () => {
    const base = ["policy", "explain", "--policy", "tidegate.yaml", "--inbound", "email-mcp"];
    const ok = await tidegate([...base, "--from", "spiffe://example.org/agent/a1", "--tool", "send_email"], { cwd: dir });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toStartWith("decision   allow: listener email-mcp accepts the client (allow spiffe://example.org/agent/*); tool send_email is allowed by mcp.tools\n");
    const stranger = await tidegate([...base, "--from", "spiffe://partner.com/bot", "--json"], { cwd: dir });
    expect(stranger.code).toBe(3);
    expect(JSON.parse(stranger.stdout)).toMatchObject({ verdict: "deny", reason: "client_not_allowed", rule: { name: "email-mcp" }, allow_matched: null, listener: { listen: "0.0.0.0:8443", id: "spiffe://example.org/mcp/email" } });
  }, T);
  test("--stdio: the rule that lets a host start a server, its tool filter, a server none lets, and --json", async () => {
    const path = file("stdio.yaml", "trust_domain: example.org\nstdio:\n  - name: desktop-fs\n    from: spiffe://example.org/host/desktop\n    server: spiffe://example.org/mcp/fs\n    mcp: { tools: { deny: [\"delete_*\"] } }\n");
    const base = ["policy", "explain", "--policy", path, "--from", "spiffe://example.org/host/desktop"];
    const ok = await tidegate([...base, "--stdio", "spiffe://example.org/mcp/fs", "--tool", "read_file"]);
    expect([ok.code, ok.stdout]).toEqual([0, "decision   allow: stdio rule desktop-fs lets the caller use the server; tool read_file is allowed by mcp.tools\nrule       desktop-fs (line 3), stdio\ncaller     spiffe://example.org/host/desktop\nserver     spiffe://example.org/mcp/fs\n"]);
    const denied = await tidegate([...base, "--stdio", "spiffe://example.org/mcp/fs", "--tool", "delete_file", "--json"]);
    expect(denied.code).toBe(3);
    expect(JSON.parse(denied.stdout)).toEqual({ verdict: "deny", reason: "tool_denied", rule: { name: "desktop-fs", line: 3 }, summary: "deny: tool delete_file is denied by mcp.tools of stdio rule desktop-fs", mcp: { kind: "tool", name: "delete_file", by: "mcp.tools" }, tried: [] });
    const none = await tidegate([...base, "--stdio", "spiffe://example.org/mcp/git"]);
    expect(none.code).toBe(3);
    expect(none.stdout).toStartWith("decision   deny: no stdio rule lets spiffe://example.org/host/desktop use spiffe://example.org/mcp/git, so tidegate run --mcp-stdio refuses to start the server\n");
    expect(none.stdout).toContain("tried      desktop-fs (line 3): server does not match\n");
  }, T);
  const USAGE: [string, string[], RegExp][] = [
    ["--stdio with --inbound", ["--from", "spiffe://example.org/x", "--stdio", "spiffe://example.org/s", "--inbound", "email-mcp"], /give one of --inbound and --stdio/],
    ["--stdio with --to", ["--from", "spiffe://example.org/x", "--stdio", "spiffe://example.org/s", "--to", "a.test:443"], /--to is for an egress connection, not with --stdio/],
    ["a bad --stdio", ["--from", "spiffe://example.org/x", "--stdio", "mcp-fs"], /--stdio: spiffeid/],
    ["no --from", ["--to", "a.test:443"], /needs --from SPIFFE_ID and --to HOST:PORT/],
    ["an --inbound the policy lacks", ["--from", "spiffe://example.org/x", "--inbound", "nope"], /has no inbound rule of that name \(it has email-mcp\)/],
    ["--inbound with --to", ["--from", "spiffe://example.org/x", "--inbound", "email-mcp", "--to", "a.test:443"], /--to is for an egress connection, not with --inbound/],
    ["--resource without --inbound", ["--from", "spiffe://example.org/x", "--to", "a.test:443", "--resource", "file:///a"], /--resource and --prompt go with --inbound/],
    ["--tool and --prompt with --inbound", ["--from", "spiffe://example.org/x", "--inbound", "email-mcp", "--tool", "a", "--prompt", "b"], /give one of --tool, --resource and --prompt/],
    ["a bad --from", ["--from", "spiffe://Example.org/x", "--to", "a.test:443"], /--from: spiffeid/],
    ["a --to without a port", ["--from", "spiffe://example.org/x", "--to", "a.test"], /is not HOST:PORT/],
    ["a --to with a bad name", ["--from", "spiffe://example.org/x", "--to", "a..test:443"], /--to: host/],
    ["--method without --path", ["--from", "spiffe://example.org/x", "--to", "a.test:443", "--method", "GET"], /--method and --path together/],
    ["a path with ..", ["--from", "spiffe://example.org/x", "--to", "a.test:443", "--method", "GET", "--path", "/a/../b"], /--path: /],
    ["--addr with an address in --to", ["--from", "spiffe://example.org/x", "--to", "10.0.0.1:443", "--addr", "10.0.0.1"], /--addr is for a --to that names a host/],
    ["--proto sctp", ["--from", "spiffe://example.org/x", "--to", "a.test:443", "--proto", "sctp"], /--proto must be tcp or udp/],
  ];
  for (const [what, args, why] of USAGE) {
    test(`usage: ${what}`, async () => {
      const r = await tidegate(["policy", "explain", "--policy", "tidegate.yaml", ...args], { cwd: dir });
      expect(r.stderr).toMatch(why);
      expect(r.code).toBe(2);
    }, T);
  }
});
