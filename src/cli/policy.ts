/**
 * `tidegate policy check FILE` and `tidegate policy explain` (docs/policy.md). Both read the file
 * themselves; neither needs an agent. Explain resolves a host rule's name (the policy's `dns:`
 * setting, else /etc/resolv.conf) only when --addr gives an original address to check against.
 */
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { str } from "./global-options.ts";
import { readInputFile } from "./files.ts";
import { existsSync } from "node:fs";
import type { SpiffeId } from "../spiffe/index.ts";
import { spiffeIdFlag } from "./flag-values.ts";
import { loadPolicy, PolicyEngine, explain, admit, describeDecision, parseIp, normalizeServerName, normalizeRequestPath, parseMethod, NameCache, PolicyError } from "../policy/index.ts";
import type { Explanation, Policy, Query, Decision } from "../policy/index.ts";
import { createDnsLookup } from "../runtime/dns-client.ts";
import { systemResolvers } from "../runtime/resolv-conf.ts";
import { explainInbound, inboundRule, renderInbound } from "./policy-inbound.ts";
import { explainStdio, renderStdio } from "./policy-stdio.ts";
import { findGroup, findListedGroup, findUser, readAccountFiles, type AccountFiles } from "../run/accounts.ts";


function readPolicy(path: string): Policy {
  return loadPolicy(new TextDecoder().decode(readInputFile(path, "policy")), path);
}

/**
 * Users and groups the policy names that this host's /etc/passwd and /etc/group do not have: a
 * warning, as a missing file is (the policy may be for another host), where `tidegate run` would
 * refuse (`run_bad_user`) or a caller would never be let in.
 */
function missingAccounts(p: Policy, files: AccountFiles): string[] {
  const out: string[] = [];
  const user = (where: string, u: string) => {
    if (findUser(files, u) === null) out.push(`${where}: user ${u} does not exist here`);
  };
  for (const w of p.workloads) {
    if (w.user !== null) user(`workload ${w.name}: user`, w.user);
    for (const u of w.runBy.users) user(`workload ${w.name}: run_by`, u);
    for (const g of w.runBy.groups) if (findGroup(files, g) === null) out.push(`workload ${w.name}: run_by: group ${g} does not exist here`);
  }
  if (findListedGroup(files, p.agent.runGroup) === null && p.workloads.some((w) => w.runBy.users.length + w.runBy.groups.length > 0)) {
    out.push(`agent.run_group: group ${p.agent.runGroup} is not in /etc/group here, so no caller other than root reaches run.sock`);
  }
  return out;
}

/** Files the policy names: a missing one is a warning (the file may live on the agent's host). */
function missingFiles(p: Policy): string[] {
  const named: [string, string | null][] = [
    ["agent.trust_bundle", p.agent.trustBundle],
    ["agent.join_token_file", p.agent.joinTokenFile],
    ...p.egress.map((r): [string, string | null] => [`egress rule ${r.name} (line ${r.line}): ca`, r.ca]),
  ];
  return named.filter(([, f]) => f !== null && !existsSync(f)).map(([what, f]) => `${what}: ${f} does not exist here`);
}

const checkCommand: Command = {
  name: "check",
  summary: "validate a policy file",
  usage: ["policy check [--json] FILE"],
  help: [
    "Reads FILE as the agent would and reports the first problem as FILE:LINE: FIELD: WHY (unknown",
    "keys, bad values, options that do not go with the rule's action, duplicate names). A valid file",
    "gets a one-line summary and the secrets it references; files, users and groups it names that",
    "do not exist here are warned about on stderr. Exit 0 valid, 1 invalid.",
    "",
    "Example: tidegate policy check /etc/tidegate/tidegate.yaml",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print the summary as JSON" } },
  run: async ({ values, positionals, io }) => {
    if (positionals.length !== 1) throw new UsageError("policy check needs exactly one FILE");
    const p = readPolicy(positionals[0]!);
    const secrets = [...new Set(p.egress.flatMap((r) => r.inject.flatMap((h) => h.secrets)))].sort();
    const summary = {
      file: p.file,
      trust_domain: p.trustDomain.name,
      workloads: p.workloads.length,
      egress_rules: p.egress.length,
      inbound_rules: p.inbound.length,
      stdio_rules: p.stdio.length,
      federation: p.federation.map((f) => f.trustDomain.name),
      secrets,
    };
    const accounts = readAccountFiles(); // "" for a file it cannot read: then no account warnings
    for (const w of [...missingFiles(p), ...(accounts.passwd === "" ? [] : missingAccounts(p, accounts))]) io.err(`warning: ${w}\n`);
    if (values.json) io.out(JSON.stringify(summary, null, 2) + "\n");
    else {
      const n = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;
      io.out(
        `ok: ${p.file}: trust domain ${summary.trust_domain}; ${n(summary.workloads, "workload", "workloads")}, ` +
          `${n(summary.egress_rules, "egress rule", "egress rules")}, ${n(summary.inbound_rules, "inbound rule", "inbound rules")}, ` +
          `${n(summary.stdio_rules, "stdio rule", "stdio rules")}, ` +
          `${n(summary.federation.length, "federated trust domain", "federated trust domains")}\n`,
      );
      if (secrets.length > 0) io.out(`secrets referenced: ${secrets.join(", ")}\n`);
    }
    return 0;
  },
};

function parseTo(text: string): { name: string | null; address: ReturnType<typeof parseIp> | null; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):([0-9]{1,5})$/.exec(text);
  if (m === null) throw new UsageError(`--to ${JSON.stringify(text.slice(0, 80))} is not HOST:PORT (IPv6 in brackets)`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new UsageError(`--to ${JSON.stringify(text)}: port must be 1-65535`);
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined) return { name: null, address: parseIp(host), port };
  const name = normalizeServerName(host);
  return name === null ? { name: null, address: parseIp(host), port } : { name, address: null, port };
}

/** A flag's value through a policy parser; its PolicyError becomes a usage error naming the flag. */
function flag<T>(name: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof PolicyError) throw new UsageError(`--${name}: ${e.message.replace(/^policy: /, "")}`);
    throw e;
  }
}

function fromOf(values: Readonly<Record<string, unknown>>): SpiffeId {
  const fromText = str(values.from);
  if (fromText === undefined) throw new UsageError("policy explain needs --from SPIFFE_ID and --to HOST:PORT (or --inbound NAME, or --stdio SERVER_ID)");
  return spiffeIdFlag(fromText, "--from");
}

function queryOf(values: Readonly<Record<string, unknown>>): Query {
  const toText = str(values.to);
  if (toText === undefined) throw new UsageError("policy explain needs --from SPIFFE_ID and --to HOST:PORT (or --inbound NAME, or --stdio SERVER_ID)");
  const from = fromOf(values);
  const to = flag("to", () => parseTo(toText));
  const addr = str(values.addr);
  if (addr !== undefined && to.address !== null) throw new UsageError("--addr is for a --to that names a host; --to already gives an address");
  const proto = str(values.proto) ?? "tcp";
  if (proto !== "tcp" && proto !== "udp") throw new UsageError(`--proto must be tcp or udp, not ${JSON.stringify(proto)}`);
  const method = str(values.method);
  const path = str(values.path);
  if ((method === undefined) !== (path === undefined)) throw new UsageError("give --method and --path together (an HTTP request has both)");
  const tool = str(values.tool) ?? null;
  return {
    from,
    proto,
    port: to.port,
    name: to.name,
    address: addr !== undefined ? flag("addr", () => parseIp(addr)) : to.address,
    http: method !== undefined ? { method: flag("method", () => parseMethod(method)), path: flag("path", () => normalizeRequestPath(path!)) } : null,
    tool,
  };
}

function render(e: Explanation, q: Query, final: Decision, detail: string | null): string {
  const at = (r: { name: string; line: number }) => `${r.name} (line ${r.line})`;
  const lines = [`decision   ${describeDecision(final)}`];
  if (detail !== null) lines.push(`resolved   ${detail}`);
  if (final.rule !== null) lines.push(`rule       ${at(final.rule)}`);
  lines.push(`caller     ${q.from.toString()}`);
  const tried = e.steps.filter((s) => s.failed.length > 0);
  if (tried.length > 0) {
    lines.push("rules tried before it (this caller's)");
    for (const s of tried) lines.push(`  ${at(s.rule)}: failed ${s.failed.join(", ")}`);
  }
  if (e.nearMisses.length > 0) {
    lines.push("near misses (matched caller and destination, failed one field)");
    for (const m of e.nearMisses) lines.push(`  ${at(m.rule)}: ${m.field}: ${m.why}`);
  }
  return lines.join("\n") + "\n";
}

/** The decision once --addr is checked against what the name resolves to; `detail` says what it resolved to when that refuses. */
async function resolveCheck(p: Policy, d: Decision, q: Query): Promise<{ decision: Decision; detail: string | null }> {
  if (d.verdict !== "allow" || q.address === null) return { decision: d, detail: null };
  const servers = p.dns.servers ?? systemResolvers();
  const names = new NameCache({ hosts: p.dns.hosts, lookup: createDnsLookup(servers) });
  const a = await admit(d, q, names);
  return { decision: a.decision, detail: a.upstream === null ? (a.detail ?? null) : null };
}

const explainCommand: Command = {
  name: "explain",
  summary: "show the decision for a connection and the rule that makes it",
  usage: [
    "policy explain [--policy FILE] --from SPIFFE_ID --to HOST:PORT [--addr IP] [--proto udp] [--method M --path P] [--tool T] [--json]",
    "policy explain [--policy FILE] --from SPIFFE_ID --inbound NAME [--tool T | --resource URI | --prompt P] [--json]",
    "policy explain [--policy FILE] --from SPIFFE_ID --stdio SERVER_ID [--tool T | --resource URI | --prompt P] [--json]",
  ],
  help: [
    "Asks the policy what happens when SPIFFE_ID connects to HOST:PORT: allow (with the action),",
    "inspect (the proxy must see HTTP first: add --method and --path), or deny, with the rule that",
    "decides. A name in --to is the connection's SNI or Host; an address is the original",
    "destination. For a deny it lists near misses: rules that matched the caller and destination but",
    "failed on one other field. With --addr, the address the workload dialled, an allow by a host",
    "rule is checked against what the name resolves to (the policy's dns: setting). --tool names",
    "the tool of an MCP tools/call.",
    "With --inbound NAME instead of --to: what inbound listener NAME does with a client of",
    "SPIFFE_ID: its trust domain (ours or federated), its allow patterns, and with --tool,",
    "--resource or --prompt the listener's mcp: filter of that kind.",
    "With --stdio SERVER_ID instead: what 'tidegate run --mcp-stdio' does when a process of",
    "SPIFFE_ID starts a server workload of SERVER_ID: the stdio rule that lets it (the rules",
    "tried before, each with the side it failed), and with --tool, --resource or --prompt that",
    "rule's mcp: filter.",
    "Exit 0 allowed (or inspect), 3 denied, 1 error.",
    "",
    "Example: tidegate policy explain --from spiffe://example.org/mcp/github --to api.github.com:443",
  ].join("\n"),
  options: {
    policy: { type: "string", value: "FILE", help: "the policy (default: the --config file)" },
    from: { type: "string", value: "SPIFFE_ID", help: "the caller's identity" },
    to: { type: "string", value: "HOST:PORT", help: "destination: host name (SNI/Host) or address, and port" },
    addr: { type: "string", value: "IP", help: "the original address the workload dialled, with a host name in --to" },
    proto: { type: "string", value: "tcp|udp", help: "protocol (default tcp)" },
    method: { type: "string", value: "M", help: "HTTP method of the request" },
    path: { type: "string", value: "P", help: "HTTP request path (query string ignored)" },
    tool: { type: "string", value: "T", help: "MCP tool of a tools/call" },
    inbound: { type: "string", value: "NAME", help: "explain inbound listener NAME instead of an egress connection" },
    stdio: { type: "string", value: "SERVER_ID", help: "explain a stdio MCP server of this identity started by --from (tidegate run --mcp-stdio)" },
    resource: { type: "string", value: "URI", help: "with --inbound or --stdio: MCP resource of a resources/read" },
    prompt: { type: "string", value: "P", help: "with --inbound or --stdio: MCP prompt of a prompts/get" },
    json: { type: "boolean", help: "print the explanation as JSON" },
  },
  run: async ({ values, positionals, places, io }) => {
    if (positionals.length > 0) throw new UsageError(`policy explain takes no arguments, got ${JSON.stringify(positionals[0])}`);
    const inbound = str(values.inbound);
    const stdio = str(values.stdio);
    const asked = (["tool", "resource", "prompt"] as const).filter((k) => str(values[k]) !== undefined);
    if (inbound !== undefined && stdio !== undefined) throw new UsageError("give one of --inbound and --stdio");
    if (inbound === undefined && stdio === undefined && asked.some((k) => k !== "tool")) throw new UsageError("--resource and --prompt go with --inbound NAME or --stdio SERVER_ID (for an egress connection, --tool is explained)");
    if (stdio !== undefined) {
      for (const f of ["to", "addr", "proto", "method", "path"]) if (str(values[f]) !== undefined) throw new UsageError(`--${f} is for an egress connection, not with --stdio`);
      if (asked.length > 1) throw new UsageError("give one of --tool, --resource and --prompt");
      const from = fromOf(values);
      const server = spiffeIdFlag(stdio, "--stdio");
      const p = readPolicy(str(values.policy) ?? places.config);
      const e = explainStdio(p, server, { from, tool: str(values.tool), resource: str(values.resource), prompt: str(values.prompt) });
      if (values.json) {
        const rule = (r: { name: string; line: number } | null) => (r === null ? null : { name: r.name, line: r.line });
        io.out(JSON.stringify({ verdict: e.verdict, reason: e.reason, rule: rule(e.rule), summary: e.summary, mcp: e.mcp, tried: e.tried.map((t) => ({ ...rule(t.rule), failed: t.failed })) }, null, 2) + "\n");
      } else io.out(renderStdio(e, from, server));
      return e.verdict === "deny" ? 3 : 0;
    }
    if (inbound !== undefined) {
      for (const f of ["to", "addr", "proto", "method", "path"]) if (str(values[f]) !== undefined) throw new UsageError(`--${f} is for an egress connection, not with --inbound`);
      if (asked.length > 1) throw new UsageError("give one of --tool, --resource and --prompt");
      const from = fromOf(values);
      const p = readPolicy(str(values.policy) ?? places.config);
      const e = explainInbound(p, inboundRule(p, inbound), { from, tool: str(values.tool), resource: str(values.resource), prompt: str(values.prompt) });
      if (values.json) {
        const r = e.rule;
        io.out(JSON.stringify({ verdict: e.verdict, reason: e.reason, rule: { name: r.name, line: r.line }, summary: e.summary, allow_matched: e.matched, mcp: e.mcp, listener: { listen: `${r.listen.host}:${r.listen.port}`, id: r.id.toString() } }, null, 2) + "\n");
      } else io.out(renderInbound(e, from));
      return e.verdict === "deny" ? 3 : 0;
    }
    const q = queryOf(values);
    const p = readPolicy(str(values.policy) ?? places.config);
    const engine = new PolicyEngine(p);
    const e = explain(p, q);
    const { decision: final, detail } = await resolveCheck(p, engine.decide(q), q);
    if (values.json) {
      const rule = (r: { name: string; line: number } | null) => (r === null ? null : { name: r.name, line: r.line });
      io.out(
        JSON.stringify(
          {
            verdict: final.verdict,
            action: final.verdict === "allow" ? final.action : null,
            reason: final.verdict === "deny" ? final.reason : null,
            rule: rule(final.rule),
            summary: describeDecision(final),
            detail,
            tried: e.steps.filter((s) => s.failed.length > 0).map((s) => ({ ...rule(s.rule), failed: s.failed })),
            near_misses: e.nearMisses.map((m) => ({ ...rule(m.rule), field: m.field, why: m.why })),
          },
          null,
          2,
        ) + "\n",
      );
    } else io.out(render(e, q, final, detail));
    return final.verdict === "deny" ? 3 : 0;
  },
};

export const policyCommand: Command = {
  name: "policy",
  summary: "check a policy file, explain a decision",
  usage: ["policy check FILE", "policy explain --from ID --to HOST:PORT [...]"],
  subcommands: [checkCommand, explainCommand],
};
