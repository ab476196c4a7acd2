/**
 * Property tests of the policy loader's YAML handling (../shared/STYLE.md point 6), beside the
 * engine's own in engine.property.test.ts: a file with every section, with values replaced by
 * hostile YAML (self-referencing aliases, tags, merge keys, huge numbers), members removed or added
 * (prototype names among them) and lines moved, gives a frozen Policy or a PolicyError naming the
 * file and a line of it, never another exception, quickly.
 */
import fc from "fast-check";
import { FUZZ_FACTOR, fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { PolicyError } from "./errors.ts";
import { loadPolicy } from "./load.ts";
import { mutatedDocument, yamlDocument, yamlishText } from "./yaml-arbitraries.ts";

const FROM = "spiffe://example.org/agent/*";
/**
 * Time limit of the 400 mutated documents: under a second on an idle machine, but 3 to 7 s on a
 * loaded CI machine late in the suite (one ran past Bun's default 5 s), so 30 s, times the soak's
 * factor. Each document's own limit (a second, in loadsOrRefuses) is unchanged.
 */
const MUTATED_TIMEOUT_MS = Math.round(30_000 * Math.max(1, FUZZ_FACTOR));

/** Every section of the policy file, with valid values (docs/policy.md). */
const VALID = {
  trust_domain: "example.org",
  agent: { server: "https://tidegate.example.org:8081", server_fingerprint: `ab:${"cd".repeat(30)}:ef`, join_token_file: "/etc/tidegate/join-token", sync_interval: "10s", retry_max: "2m", drain_timeout: "10s" },
  proxy: { connect_timeout: "10s", first_byte_timeout: "30s", idle_timeout: "5m", header_timeout: "30s" },
  audit: { dir: "/srv/audit", checkpoint_every: 10, checkpoint_interval: "5s", max_file_size: 65536, on_failure: "serve", export: { otlp: "http://127.0.0.1:4318/v1/logs" } },
  workloads: [{ name: "github-mcp", id: "spiffe://example.org/mcp/github", selectors: ["unix:uid:1001"], user: "mcp", run_by: { users: ["alice"], groups: ["developers"] } }],
  egress: [
    {
      name: "github-api",
      from: "spiffe://example.org/mcp/github",
      to: { host: "api.github.com", port: 443 },
      action: "intercept",
      inject: { headers: { Authorization: "Bearer ${secret:github_token}" }, placeholder_headers: ["X-Api-Key"] },
      http: { methods: ["GET", "POST"], paths: ["/repos/**"] },
      upgrade: ["websocket"],
    },
    {
      name: "partner-email",
      from: [FROM, "spiffe://example.org/bot"],
      to: { host: "*.partner.com", port: 443 },
      action: "intercept",
      mtls: { server_id: "spiffe://partner.com/mcp/email" },
      mcp: { tools: { allow: ["send_email"], deny: ["delete_all"] }, resources: { allow: ["file:///data/*"] }, prompts: { deny: ["admin_*"] } },
    },
    { name: "internal", from: "spiffe://example.org/**", to: { cidr: "10.0.0.0/8", port: "8000-8080" }, action: "tls", ca: "/etc/tidegate/ca.pem", upstream: { port: 8443 } },
    { name: "resolver", from: "spiffe://example.org/**", to: { cidr: "127.0.0.53/32", port: 53, proto: "udp" }, action: "direct" },
  ],
  inbound: [
    { name: "email-mcp", id: "spiffe://example.org/mcp/email", listen: "0.0.0.0:8443", forward: "127.0.0.1:3000", allow: [FROM], proxy_protocol: true, mcp: { tools: { allow: ["send_email"] } } },
    { name: "unix-mcp", id: "spiffe://example.org/mcp/unix", listen: "[::1]:9443", forward: "unix:/run/mcp.sock", allow: FROM },
  ],
  stdio: [{ name: "files", from: FROM, server: "spiffe://example.org/mcp/files", mcp: { tools: { allow: ["read_file"] } } }],
  federation: [{ trust_domain: "partner.com" }],
  dns: { servers: ["127.0.0.53", "[::1]:5353"], hosts: { "api.internal": ["10.1.2.3", "fd00::3"] } },
};

const WORDS = [
  "trust_domain", "example.org", "agent", "server", "audit", "proxy", "header_timeout", "30s", "workloads", "egress", "inbound", "stdio", "federation", "dns", "name", "from",
  "to", "host", "cidr", "port", "proto", "action", "intercept", "deny", "mtls", "server_id", "inject", "headers", "placeholder_headers", "http", "mcp", "tools",
  "allow", "upstream", "listen", "forward", FROM, "10.0.0.0/8", "443", "/v1/**",
];

/** Loads `text`: a frozen Policy, or PolicyError policy_invalid at a line of the text. */
function loadsOrRefuses(text: string): "loaded" | "refused" {
  const t0 = performance.now();
  let outcome: "loaded" | "refused";
  try {
    const p = loadPolicy(text, "fuzz.yaml");
    assert.ok(Object.isFrozen(p) && Object.isFrozen(p.egress) && Object.isFrozen(p.inbound));
    outcome = "loaded";
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    assert.equal(e.code, "policy_invalid");
    const m = /^policy: fuzz\.yaml:(\d+): /.exec(e.message);
    assert.ok(m !== null, e.message);
    assert.ok(Number(m[1]) <= text.split(/\r\n|\r|\n/).length + 1, e.message);
    assert.ok(e.message.length < 1000, `a message of ${e.message.length} characters`);
    outcome = "refused";
  }
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `loading took ${ms.toFixed(0)} ms`);
  return outcome;
}

describe("loadPolicy on hostile YAML", () => {
  test("the valid document loads (the mutations start from a working file)", () => {
    assert.equal(loadsOrRefuses(yamlDocument(VALID)), "loaded");
  });

  test("arbitrary text of YAML pieces and policy words: a Policy or PolicyError at a line", () => {
    fc.assert(fc.property(yamlishText(WORDS), (text) => void loadsOrRefuses(text)), { numRuns: fuzzRuns(300) });
  });

  test("every section with values replaced by hostile YAML, members removed or added, lines moved", () => {
    const outcomes = new Set<string>();
    fc.assert(
      fc.property(mutatedDocument(VALID), (text) => {
        outcomes.add(loadsOrRefuses(text));
      }),
      { numRuns: fuzzRuns(400) },
    );
    assert.deepEqual([...outcomes].sort(), ["loaded", "refused"]);
  }, MUTATED_TIMEOUT_MS);
});
