/**
 * `loadPolicy`: the policy file's text in, a complete Policy or a PolicyError out; never a partial
 * policy, so a caller that keeps the last good one on error (the agent's reload) has nothing to
 * undo. Errors read `policy: FILE:LINE: PATH: WHY` and stop at the first problem.
 *
 * Checks after the schema (docs/policy.md, "Rejected"):
 * - `to:` names exactly one of `host` and `cidr`;
 * - `udp` only with `deny` or `direct`, and only on `cidr` (the kernel decides UDP and sees no names);
 * - `direct` only on `cidr` (it never reaches the proxy, which is where names are known);
 * - `mtls:` required with `mtls`, allowed with `intercept`, nowhere else; `ca` only with `tls`, or
 *   `intercept` without `mtls:`; `inject` and `mcp` only with `intercept`; `http` only with
 *   `intercept` or `deny`; `upstream` only with `passthrough`, `tls`, `mtls`, `intercept`;
 *   `upgrade` only with `intercept`; `inject.placeholder_headers` names no header the rule injects
 *   (the workload's value for it is dropped: the entry would look like it allows something);
 * - rule names unique across `egress` and `inbound`; workload names and IDs unique; inbound listen
 *   addresses unique; federated trust domains unique and not our own;
 * - `from` patterns and workload IDs in our trust domain; `mtls.server_id` and inbound `allow` in
 *   our trust domain or a federated one; workload IDs have a path not under /tidegate/;
 * - a workload's selectors are ones an attestor gives (schema.ts, src/attest/selector.ts), and no
 *   `tidegate:` selector but its own `tidegate:workload:NAME`: that one is implied, and a process
 *   is in one workload's cgroup only, so another workload's, or an inbound listener's, would make
 *   the entry select nothing;
 * - a `dns.hosts` name is a plain host name (no wildcard);
 * - `agent:` names server_fingerprint or trust_bundle, not both.
 */
import type { TrustDomain } from "../spiffe/index.ts";
import { PolicyError } from "./errors.ts";
import { toolDecider } from "../mcp/tool-filter.ts";
import { normalizeServerName } from "./host-name.ts";
import { BOUND_KEYS, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_MAX_OPEN, DEFAULT_PROXY_SETTINGS, type Action, type DnsSettings, type EgressRule, type IdPattern, type InboundRule, type McpRules, type Policy, type RuleBounds, type StdioRule, type ToolFilter, type Workload } from "./model.ts";
import { DEFAULT_PLACEHOLDER_HEADERS } from "./inject.ts";
import { PolicySchema, type EgressInput, type PolicyInput } from "./schema.ts";
import { readYaml, type FailFn, type YamlSource } from "./source.ts";

type Path = (string | number)[];

const DEFAULT_PLACEHOLDER_KEYS: readonly string[] = Object.freeze(DEFAULT_PLACEHOLDER_HEADERS.map((h) => h.toLowerCase()));

const ALLOWED: Readonly<Record<string, readonly Action[]>> = {
  mtls: ["mtls", "intercept"],
  ca: ["tls", "intercept"],
  inject: ["intercept"],
  mcp: ["intercept"],
  http: ["intercept", "deny"],
  upstream: ["passthrough", "tls", "mtls", "intercept"],
  upgrade: ["intercept"],
  proxy: ["passthrough", "tls", "mtls", "intercept"],
};

function trustDomainOf(text: string): string {
  return text.slice("spiffe://".length).split("/")[0] ?? "";
}

type FilterInput = { allow?: string[] | undefined; deny?: string[] | undefined } | undefined;
type McpInput = { tools?: FilterInput; resources?: FilterInput; prompts?: FilterInput } | undefined;

function filterOf(t: FilterInput): ToolFilter | null {
  if (t === undefined) return null;
  const filter = { allow: t.allow === undefined ? null : new Set(t.allow), deny: new Set(t.deny ?? []) };
  return Object.freeze({ ...filter, decide: toolDecider(filter) });
}

/** `mcp` and `tools`, the same filter object in both. */
function mcpOf(m: McpInput): { tools: ToolFilter | null; mcp: McpRules | null } {
  const mcp = mcpRules(m);
  return { tools: mcp?.tools ?? null, mcp };
}

function mcpRules(m: McpInput): McpRules | null {
  if (m === undefined) return null;
  return Object.freeze({ tools: filterOf(m.tools), resources: filterOf(m.resources), prompts: filterOf(m.prompts) });
}

function checkEgress(r: EgressInput, at: Path, fail: FailFn, ours: TrustDomain, known: ReadonlySet<string>): void {
  const hasHost = r.to.host !== undefined;
  if (hasHost === (r.to.cidr !== undefined)) fail([...at, "to"], "give exactly one of host and cidr");
  const proto = r.to.proto ?? "tcp";
  if (proto === "udp" && r.action !== "deny" && r.action !== "direct") fail([...at, "to", "proto"], `udp goes only with deny or direct, not ${r.action}`);
  if (proto === "udp" && hasHost) fail([...at, "to", "host"], "udp rules name a cidr: the kernel decides UDP and never sees names");
  if (r.action === "direct" && hasHost) fail([...at, "to", "host"], "direct rules name a cidr: they are applied in the kernel, which never sees names");
  if (r.action === "mtls" && r.mtls === undefined) fail([...at, "mtls"], "required with action mtls (mtls: { server_id: spiffe://... })");
  if (r.mcp !== undefined && r.upgrade !== undefined) fail([...at, "upgrade"], "not with mcp: after a protocol switch MCP messages would pass unchecked");
  for (const [key, actions] of Object.entries(ALLOWED)) {
    if ((r as Record<string, unknown>)[key] !== undefined && !actions.includes(r.action)) {
      fail([...at, key], `not allowed with action ${r.action} (only with ${actions.join(", ")})`);
    }
  }
  const injected = new Set(r.inject?.headers.map((t) => t.key));
  const both = r.inject?.placeholder_headers?.find((k) => injected.has(k));
  if (both !== undefined) fail([...at, "inject", "placeholder_headers"], `header ${both} is one the rule injects: the workload's value for it is dropped, so no placeholder is ever swapped there`);
  if (r.ca !== undefined && r.mtls !== undefined) fail([...at, "ca"], "not allowed with mtls: (the peer is verified against its trust domain's bundle)");
  if (r.upstream !== undefined && r.upstream.port === undefined && r.upstream.key_exchange === undefined) fail([...at, "upstream"], "give port, key_exchange or both");
  if (r.upstream?.key_exchange !== undefined && r.action === "passthrough") fail([...at, "upstream", "key_exchange"], "not allowed with action passthrough (its upstream leg is not TLS)");
  if (proto === "udp" && r.http !== undefined) fail([...at, "http"], "not allowed on udp");
  if (r.http !== undefined && r.http.methods === undefined && r.http.paths === undefined) fail([...at, "http"], "give methods, paths or both");
  r.from.forEach((p, i) => {
    if (trustDomainOf(p.text) !== ours.name) fail([...at, "from", ...(r.from.length > 1 ? [i] : [])], `${JSON.stringify(p.text)} is not in trust domain ${ours.name}`);
  });
  if (r.mtls !== undefined && !known.has(r.mtls.server_id.trustDomain.name)) {
    fail([...at, "mtls", "server_id"], `trust domain ${r.mtls.server_id.trustDomain.name} is neither ours nor under federation:`);
  }
}

/** A rule's `proxy:` as bounds in milliseconds; null without one. An empty one is refused: it would look like it changes something. */
function ruleBounds(p: { connect_timeout?: number; first_byte_timeout?: number; idle_timeout?: number; header_timeout?: number } | undefined, at: Path, fail: FailFn): RuleBounds | null {
  if (p === undefined) return null;
  const b: { -readonly [K in keyof RuleBounds]: RuleBounds[K] } = {};
  for (const [key, k] of BOUND_KEYS) if (p[key] !== undefined) b[k] = p[key];
  if (Object.keys(b).length === 0) fail(at, "give at least one bound (connect_timeout, first_byte_timeout, idle_timeout, and on an inbound listener header_timeout)");
  return Object.freeze(b);
}

function idPatterns(list: readonly { text: string; matcher: IdPattern["matcher"] }[]): readonly IdPattern[] {
  return Object.freeze(list.map((p) => Object.freeze({ text: p.text, matcher: p.matcher })));
}

function buildEgress(input: PolicyInput, source: YamlSource, fail: FailFn, known: ReadonlySet<string>): EgressRule[] {
  return (input.egress ?? []).map((r, index) => {
    const at: Path = ["egress", index];
    checkEgress(r, at, fail, input.trust_domain, known);
    return Object.freeze({
      index,
      name: r.name,
      line: source.lineOf(at),
      from: idPatterns(r.from),
      to: r.to.host !== undefined ? Object.freeze({ kind: "host" as const, host: r.to.host }) : Object.freeze({ kind: "cidr" as const, cidr: r.to.cidr! }),
      ports: r.to.port,
      proto: r.to.proto ?? "tcp",
      action: r.action,
      http: r.http === undefined ? null : Object.freeze({ methods: r.http.methods ?? null, paths: r.http.paths ?? null }),
      ...mcpOf(r.mcp),
      inject: Object.freeze(r.inject?.headers ?? []),
      placeholderHeaders: r.inject?.placeholder_headers ?? DEFAULT_PLACEHOLDER_KEYS,
      ca: r.ca ?? null,
      serverId: r.mtls?.server_id ?? null,
      upstreamPort: r.upstream?.port ?? null,
      keyExchange: r.upstream?.key_exchange ?? "hybrid",
      upgrade: Object.freeze([...new Set(r.upgrade ?? [])]),
      bounds: ruleBounds(r.proxy, [...at, "proxy"], fail),
    });
  });
}

function buildInbound(input: PolicyInput, source: YamlSource, fail: FailFn, known: ReadonlySet<string>): InboundRule[] {
  const listens = new Map<string, number>();
  return (input.inbound ?? []).map((r, index) => {
    const at: Path = ["inbound", index];
    const key = `${r.listen.host}:${r.listen.port}`;
    const before = listens.get(key);
    if (before !== undefined) fail([...at, "listen"], `${key} is already the listen address of inbound[${before}]`);
    listens.set(key, index);
    if (!r.id.trustDomain.equals(input.trust_domain)) fail([...at, "id"], `${r.id.toString()} is not in our trust domain ${input.trust_domain.name}: the agent holds SVIDs of its own trust domain only`);
    r.allow.forEach((p, i) => {
      const td = trustDomainOf(p.text);
      if (!known.has(td)) fail([...at, "allow", ...(r.allow.length > 1 ? [i] : [])], `trust domain ${td} is neither ours nor under federation:`);
    });
    return Object.freeze({
      index,
      name: r.name,
      line: source.lineOf(at),
      id: r.id,
      listen: r.listen,
      forward: r.forward,
      allow: idPatterns(r.allow),
      proxyProtocol: r.proxy_protocol ?? false,
      forwardClientCert: r.forward_client_cert ?? false,
      ...mcpOf(r.mcp),
      bounds: ruleBounds(r.proxy, [...at, "proxy"], fail),
    });
  });
}

function buildStdio(input: PolicyInput, source: YamlSource, fail: FailFn, known: ReadonlySet<string>): StdioRule[] {
  return (input.stdio ?? []).map((r, index) => {
    const at: Path = ["stdio", index];
    r.from.forEach((p, i) => {
      const td = trustDomainOf(p.text);
      if (!known.has(td)) fail([...at, "from", ...(r.from.length > 1 ? [i] : [])], `trust domain ${td} is neither ours nor under federation:`);
    });
    r.server.forEach((p, i) => {
      if (trustDomainOf(p.text) !== input.trust_domain.name) fail([...at, "server", ...(r.server.length > 1 ? [i] : [])], `${p.text} is not in our trust domain ${input.trust_domain.name}: a stdio server is a workload of this agent`);
    });
    return Object.freeze({ index, name: r.name, line: source.lineOf(at), from: idPatterns(r.from), server: idPatterns(r.server), mcp: mcpRules(r.mcp)! });
  });
}

function buildWorkloads(input: PolicyInput, fail: FailFn): Workload[] {
  const names = new Map<string, number>();
  const ids = new Map<string, number>();
  return (input.workloads ?? []).map((w, i) => {
    const at: Path = ["workloads", i];
    if (names.has(w.name)) fail([...at, "name"], `${JSON.stringify(w.name)} is already the name of workloads[${names.get(w.name)}]`);
    names.set(w.name, i);
    const id = w.id.toString();
    if (ids.has(id)) fail([...at, "id"], `${id} is already the id of workloads[${ids.get(id)}]`);
    ids.set(id, i);
    if (!w.id.memberOf(input.trust_domain)) fail([...at, "id"], `${id} is not in trust domain ${input.trust_domain.name}`);
    if (w.id.path === "" || w.id.path === "/tidegate" || w.id.path.startsWith("/tidegate/")) {
      fail([...at, "id"], `${id} needs a path, not under /tidegate/ (reserved for the server and its nodes)`);
    }
    for (const [j, s] of (w.selectors ?? []).entries()) {
      if (s.startsWith("tidegate:") && s !== `tidegate:workload:${w.name}`) {
        fail([...at, "selectors", j], `selector ${JSON.stringify(s)} would make the workload select nothing: tidegate:workload:${w.name} is implied, and a process carries one tidegate: selector only`);
      }
    }
    return Object.freeze({
      name: w.name,
      id: w.id,
      selectors: Object.freeze(w.selectors ?? []),
      user: w.user ?? null,
      runBy: Object.freeze({ users: Object.freeze(w.run_by?.users ?? []), groups: Object.freeze(w.run_by?.groups ?? []) }),
    });
  });
}

function buildDns(input: PolicyInput, fail: FailFn): DnsSettings {
  const hosts = new Map<string, readonly import("./address.ts").IpAddress[]>();
  for (const [name, addresses] of Object.entries(input.dns?.hosts ?? {})) {
    let normal: string | null;
    try {
      normal = normalizeServerName(name);
    } catch (e) {
      fail(["dns", "hosts", name], (e as Error).message);
    }
    if (normal === null) fail(["dns", "hosts", name], "is an address, not a host name");
    if (hosts.has(normal)) fail(["dns", "hosts", name], `${normal} is listed twice`);
    hosts.set(normal, Object.freeze(addresses));
  }
  return Object.freeze({ servers: input.dns?.servers ?? null, hosts });
}

/** Parses and checks a policy file's text; `file` names it in errors. Throws PolicyError. */
export function loadPolicy(text: string, file: string): Policy {
  const { value: input, source, fail } = readYaml(PolicySchema, text, file, {
    subject: "policy",
    docsHint: "docs/policy.md",
    makeError: (message) => new PolicyError("policy_invalid", message),
  });
  const ours = input.trust_domain;
  const known = new Set([ours.name]);
  (input.federation ?? []).forEach((f, i) => {
    const td = f.trust_domain.name;
    if (known.has(td)) fail(["federation", i, "trust_domain"], td === ours.name ? `${td} is our own trust domain` : `${td} is listed twice`);
    known.add(td);
  });
  const egress = buildEgress(input, source, fail, known);
  const inbound = buildInbound(input, source, fail, known);
  const stdio = buildStdio(input, source, fail, known);
  const seen = new Map<string, string>();
  for (const [list, rules] of [["egress", egress], ["inbound", inbound], ["stdio", stdio]] as const) {
    for (const r of rules) {
      const before = seen.get(r.name);
      if (before !== undefined) fail([list, r.index, "name"], `${JSON.stringify(r.name)} is already the name of ${before}`);
      seen.set(r.name, `${list}[${r.index}] (line ${r.line})`);
    }
  }
  const a = input.agent;
  if (a?.server_fingerprint !== undefined && a.trust_bundle !== undefined) fail(["agent", "trust_bundle"], "give server_fingerprint or trust_bundle, not both");
  return Object.freeze({
    file,
    trustDomain: ours,
    agent: Object.freeze({
      server: a?.server ?? null,
      serverFingerprint: a?.server_fingerprint ?? null,
      trustBundle: a?.trust_bundle ?? null,
      joinTokenFile: a?.join_token_file ?? null,
      syncIntervalMs: a?.sync_interval ?? null,
      retryMaxMs: a?.retry_max ?? null,
      runGroup: a?.run_group ?? "tidegate",
      drainTimeoutMs: a?.drain_timeout ?? DEFAULT_DRAIN_TIMEOUT_MS,
      maxConnectionsPerWorkload: a?.max_connections_per_workload ?? DEFAULT_MAX_OPEN,
    }),
    audit: Object.freeze({
      dir: input.audit?.dir ?? null,
      checkpointEvery: input.audit?.checkpoint_every ?? null,
      checkpointIntervalMs: input.audit?.checkpoint_interval ?? null,
      maxFileBytes: input.audit?.max_file_size ?? null,
      onFailure: input.audit?.on_failure ?? "refuse",
      exportOtlp: input.audit?.export?.otlp ?? null,
    }),
    proxy: Object.freeze({
      connectTimeoutMs: input.proxy?.connect_timeout ?? DEFAULT_PROXY_SETTINGS.connectTimeoutMs,
      firstByteTimeoutMs: input.proxy?.first_byte_timeout ?? DEFAULT_PROXY_SETTINGS.firstByteTimeoutMs,
      idleTimeoutMs: input.proxy?.idle_timeout ?? DEFAULT_PROXY_SETTINGS.idleTimeoutMs,
      headerTimeoutMs: input.proxy?.header_timeout ?? DEFAULT_PROXY_SETTINGS.headerTimeoutMs,
    }),
    workloads: Object.freeze(buildWorkloads(input, fail)),
    egress: Object.freeze(egress),
    inbound: Object.freeze(inbound),
    stdio: Object.freeze(stdio),
    federation: Object.freeze(
      (input.federation ?? []).map((f) =>
        Object.freeze({ trustDomain: f.trust_domain }),
      ),
    ),
    dns: buildDns(input, fail),
  });
}
