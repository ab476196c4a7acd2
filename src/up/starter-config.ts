/**
 * The starter config `tidegate up` writes when the instance has none (issue 11): the trust domain,
 * no workloads, default deny, the host's resolvers allowed, and comments that show how to add
 * the rest. Pure text in, text out (the caller reads /etc/resolv.conf), so it is tested without a
 * host. `tidegate policy check` must accept every config this writes (a test loads it).
 */
import { isIP } from "node:net";

/** The `nameserver` addresses of resolv.conf text, in order, deduplicated; zone ids dropped. */
export function resolversOf(resolvConf: string): string[] {
  const out: string[] = [];
  for (const raw of resolvConf.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(raw);
    if (m === null) continue;
    const addr = m[1]!.replace(/%.*$/, "");
    if (isIP(addr) !== 0 && !out.includes(addr)) out.push(addr);
  }
  return out;
}

/** The host name's first label, lowercased, other characters than `keep` replaced by "-"; "" when none is left. */
function firstLabel(hostname: string, keep: RegExp): string {
  return hostname
    .toLowerCase()
    .split(".")[0]!
    .replace(keep, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 63);
}

/** A trust domain made from a host name: lowercase, only `[a-z0-9-]` in its first label, under `.internal`. */
export function trustDomainFor(hostname: string): string {
  return `${firstLabel(hostname, /[^a-z0-9-]/g) || "local"}.internal`;
}

/** One SPIFFE path segment naming this node: the host's first label, or "local". */
export function nodeNameFor(hostname: string): string {
  return firstLabel(hostname, /[^a-z0-9_-]/g) || "local";
}

export function starterConfig(opts: { trustDomain: string; resolvers: readonly string[]; writtenAt: Date }): string {
  const td = opts.trustDomain;
  const rules: string[] = [];
  opts.resolvers.forEach((addr, i) => {
    const cidr = isIP(addr) === 6 ? `${addr}/128` : `${addr}/32`;
    const n = opts.resolvers.length === 1 ? "" : `-${i + 1}`;
    rules.push(
      `  - name: resolver${n}-udp`,
      `    from: "spiffe://${td}/**"`,
      `    to: { cidr: "${cidr}", port: 53, proto: udp }`,
      `    action: direct`,
      `  - name: resolver${n}-tcp`,
      `    from: "spiffe://${td}/**"`,
      `    to: { cidr: "${cidr}", port: 53 }`,
      `    action: direct`,
    );
  });
  return [
    `# tidegate: agent settings and policy for this host, written by 'tidegate up' on ${opts.writtenAt.toISOString().slice(0, 10)}.`,
    "# Every key is in docs/policy.md. Check an edit with 'tidegate policy check FILE'; the agent",
    "# reloads this file when it changes (a file that does not load is refused and the last good",
    "# policy stays in force).",
    "#",
    "# DEFAULT DENY: a workload started with 'tidegate run' reaches nothing that a rule below does",
    "# not name. The only rules to begin with let workloads ask this host's resolvers.",
    "",
    `trust_domain: ${td}`,
    "",
    "# Workloads: each is an identity 'tidegate up' registers for this host. 'tidegate run",
    "# --workload NAME -- COMMAND' starts COMMAND in NAME's cgroup, as NAME's user, with that identity.",
    "workloads: []",
    "#  - name: github-mcp",
    `#    id: spiffe://${td}/mcp/github`,
    "#    user: nobody",
    "",
    "# Egress rules: tried in order, the first that matches decides; no match is a deny.",
    rules.length > 0 ? "egress:" : "egress: []",
    ...(rules.length > 0 ? ["  # The host's resolvers (from /etc/resolv.conf), so workloads can look names up.", ...rules] : ["# (no nameserver found in /etc/resolv.conf: add rules for your resolvers here)"]),
    "  # An API whose token tidegate adds on the wire (the workload never holds it); store the",
    "  # token first with 'tidegate secret set github_token':",
    "  # - name: github-api",
    `  #   from: spiffe://${td}/mcp/github`,
    "  #   to: { host: api.github.com, port: 443 }",
    "  #   action: intercept",
    '  #   inject: { headers: { Authorization: "Bearer ${secret:github_token}" } }',
    "  #   mcp: { tools: { deny: [delete_*] } }   # for an MCP server behind it: hide and refuse tools",
    "",
    "# Inbound listeners (mutual TLS in front of a local server) and stdio MCP rules: docs/policy.md.",
    "",
  ].join("\n");
}
