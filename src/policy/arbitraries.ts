/**
 * Generators of policies and queries for the property tests (engine.property.test.ts) and the
 * benchmark (bench/policy.ts).
 *
 * `policyArb` builds random ORDERED egress rule sets as policy file text, valid by construction
 * (every key goes with an action that allows it: load.ts's checks), so they reach the engine
 * through `loadPolicy`. The vocabulary is small on purpose: a few callers and patterns, host names
 * under two nested parent domains and one other, address ranges that nest and overlap, port
 * ranges that share edges, so that rules collide and shadow each other often. `queryArb` asks
 * about the same vocabulary, plus the edges of the policy's own ranges (first, last, and one
 * beyond each), where an interval index would go wrong.
 *
 * `benchPolicy` / `benchQueries` are deterministic (a seeded PRNG, no fast-check): a large policy
 * mixing exact and wildcard hosts, IPv4 and IPv6 ranges, single ports and port ranges over ten
 * callers, and queries spread over its rules plus a share that matches nothing.
 */
import fc from "fast-check";
import { parsePattern, SpiffeId } from "../spiffe/index.ts";
import { formatIp, parseCidr, parseIp, type IpAddress } from "./address.ts";
import { normalizeServerName, parseHostPattern } from "./host-name.ts";
import { parsePortRange } from "./ports.ts";
import { normalizeRequestPath } from "./http-match.ts";
import { ACTIONS, type Action, type EgressRule } from "./model.ts";
import type { Query } from "./query.ts";

const TD = "spiffe://example.org";
export const CALLER_IDS: readonly string[] = ["a", "b", "agent/x", "agent/y", "c/d"].map((p) => `${TD}/${p}`);
const FROM_PATTERNS = [`${TD}/a`, `${TD}/b`, `${TD}/agent/*`, `${TD}/**`, `${TD}/c/*`];
const RULE_HOSTS = [
  "api.example.com", "example.com", "a.svc.example.com", "x.other.net", "other.net", "API.Example.COM.",
  "*.example.com", "**.example.com", "*.svc.example.com", "**.svc.example.com", "*.other.net", "**.other.net",
];
const QUERY_NAMES = [
  "example.com", "api.example.com", "svc.example.com", "a.svc.example.com", "b.a.svc.example.com", "x.svc.example.com",
  "other.net", "x.other.net", "y.x.other.net", "unrelated.org", "API.EXAMPLE.COM.", "b.a.svc.example.com.",
];
const V4_CIDRS = ["0.0.0.0/0", "0.0.0.0/8", "127.0.0.0/8", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.3/32", "10.1.2.3", "10.2.0.0/15", "192.168.0.0/16", "192.168.1.0/24"];
const V6_CIDRS = ["::/0", "::1/128", "2001:db8::/32", "2001:db8::/33", "2001:db8:8000::/33", "2001:db8:1::/48", "2001:db8:1::5/128", "2001:DB8:1::5", "fd00::/8"];
const ADDRESSES = [
  "10.1.2.3", "10.1.2.4", "10.1.2.128", "10.1.2.255", "10.1.3.1", "10.3.0.1", "10.255.255.255", "11.0.0.0", "192.168.1.1",
  "192.168.2.1", "8.8.8.8", "2001:db8:1::5", "2001:db8:1::6", "2001:db8:8000::1", "2001:db8:ffff::1", "fd12::1", "2002::1",
  "::ffff:10.1.2.3", "::1",
  // the unspecified addresses, which reach the loopback ones (address.ts reachedAddress)
  "0.0.0.0", "::", "::ffff:0.0.0.0", "127.0.0.1", "0.0.0.7",
];
const RULE_PORTS: readonly (string | number)[] = [443, 80, "53", "8000-8080", "8080-9000", "any", "1-1024", 65535, "1-65535", "443-444"];
const QUERY_PORTS = [1, 53, 80, 443, 444, 1024, 1025, 7999, 8000, 8080, 8081, 9000, 9001, 65535];
const METHODS = ["GET", "POST", "PUT", "DELETE"];
const PATH_PATTERNS = ["/v1/**", "/v1/*", "/v1/items", "/v1/", "/v2/**", "/", "/**", "/*/items"];
const REQUEST_TARGETS = ["/", "/v1", "/v1/", "/v1/items", "/v1/%69tems", "/v1/x", "/v1/x/y", "/v2", "/v2/a/b", "/x/items", "/other?q=1"];
const TOOLS = ["search", "send_email", "read", "drop_table"];
const SERVER_IDS = [`${TD}/mcp/email`, "spiffe://partner.com/mcp/email"];

export interface RuleSpec {
  readonly from: readonly string[];
  /** Written as a one-item list rather than a scalar. */
  readonly fromList: boolean;
  readonly to: { readonly host: string } | { readonly cidr: string };
  /** `to:` as a block mapping rather than a flow one. */
  readonly toBlock: boolean;
  readonly port: string | number;
  /** null: the key is left out (tcp). */
  readonly proto: "tcp" | "udp" | null;
  readonly action: Action;
  readonly http: { readonly methods: readonly string[] | null; readonly paths: readonly string[] | null } | null;
  readonly serverId: string | null;
  readonly ca: string | null;
  readonly tools: { readonly allow: readonly string[] | null; readonly deny: readonly string[] | null } | null;
  readonly inject: boolean;
  readonly upstream: number | null;
  /** The rule's own `proxy:` bounds, each key with its text and its milliseconds; null: none (and none on deny or direct). */
  readonly proxy: readonly (readonly [key: (typeof BOUND_KEYS)[number], text: string, ms: number])[] | null;
}

const BOUND_KEYS = ["connect_timeout", "first_byte_timeout", "idle_timeout"] as const;
const BOUND_VALUES: readonly (readonly [string, number])[] = [["250ms", 250], ["2s", 2000], ["90s", 90_000], ["30m", 1_800_000], ["1h", 3_600_000], ["24d", 2_073_600_000]];

export interface PolicySpec {
  readonly rules: readonly RuleSpec[];
  readonly workloads: boolean;
  readonly yaml: string;
}

const some = <T>(xs: readonly T[], max = 3) => fc.uniqueArray(fc.constantFrom(...xs), { minLength: 1, maxLength: max });
/** `a` or null, in the ratio present : absent (shrinks towards null). */
const maybe = <T>(a: fc.Arbitrary<T>, present = 1, absent = 1): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: absent, arbitrary: fc.constant(null) }, { weight: present, arbitrary: a });

const rawRuleArb = fc.record({
  // deny and direct twice as often (what the kernel decides alone), intercept too (http, tools).
  action: fc.constantFrom(...ACTIONS, "deny" as const, "direct" as const, "intercept" as const),
  from: some(FROM_PATTERNS, 2),
  fromList: fc.boolean(),
  host: fc.constantFrom(...RULE_HOSTS),
  cidr: fc.constantFrom(...V4_CIDRS, ...V6_CIDRS),
  useHost: fc.boolean(),
  toBlock: fc.boolean(),
  port: fc.constantFrom(...RULE_PORTS),
  proto: fc.constantFrom(null, null, "tcp" as const, "udp" as const),
  http: maybe(fc.record({ methods: maybe(some(METHODS)), paths: maybe(some(PATH_PATTERNS)) }), 1, 2),
  serverId: maybe(fc.constantFrom(...SERVER_IDS)),
  ca: maybe(fc.constant("/etc/tidegate/ca.pem"), 1, 2),
  tools: maybe(fc.record({ allow: maybe(fc.uniqueArray(fc.constantFrom(...TOOLS), { maxLength: 2 })), deny: maybe(some(TOOLS, 2)) })),
  inject: fc.boolean(),
  upstream: maybe(fc.constantFrom(443, 8443), 1, 2),
  proxy: maybe(fc.uniqueArray(fc.tuple(fc.constantFrom(...BOUND_KEYS), fc.constantFrom(...BOUND_VALUES)), { minLength: 1, maxLength: 3, selector: ([k]) => k }), 1, 2),
});

/** A rule that load.ts accepts: keys the action does not allow are dropped, not rejected. */
export const ruleArb: fc.Arbitrary<RuleSpec> = rawRuleArb.map((r) => {
  const a = r.action;
  const cidrOnly = a === "direct" || (r.proto === "udp" && a === "deny");
  const proto = r.proto === "udp" && a !== "deny" && a !== "direct" ? "tcp" : r.proto;
  const to = cidrOnly || !r.useHost ? { cidr: r.cidr } : { host: r.host };
  const serverId = a === "mtls" ? (r.serverId ?? SERVER_IDS[0]!) : a === "intercept" ? r.serverId : null;
  const keepHttp = (a === "intercept" || a === "deny") && proto !== "udp";
  // `http:` needs methods or paths (load.ts).
  const http = r.http === null || !keepHttp ? null : r.http.methods === null && r.http.paths === null ? { methods: ["GET"], paths: null } : r.http;
  return {
    from: r.from,
    fromList: r.fromList || r.from.length > 1,
    to,
    toBlock: r.toBlock,
    port: r.port,
    proto,
    action: a,
    http,
    serverId,
    ca: (a === "tls" || (a === "intercept" && serverId === null)) ? r.ca : null,
    tools: a === "intercept" ? r.tools : null,
    inject: a === "intercept" && r.inject,
    upstream: a === "passthrough" || a === "tls" || a === "mtls" || a === "intercept" ? r.upstream : null,
    proxy: a === "deny" || a === "direct" || r.proxy === null ? null : r.proxy.map(([k, [text, ms]]) => [k, text, ms] as const),
  };
});

const str = (s: string) => JSON.stringify(s);
const flowList = (xs: readonly string[]) => `[${xs.map(str).join(", ")}]`;

function ruleYaml(r: RuleSpec, i: number): string {
  const toEntries: [string, string][] = [
    "host" in r.to ? ["host", str(r.to.host)] : ["cidr", str(r.to.cidr)],
    ["port", typeof r.port === "number" ? String(r.port) : str(r.port)],
  ];
  if (r.proto !== null) toEntries.push(["proto", r.proto]);
  const lines = [
    `  - name: r${i}`,
    `    from: ${r.fromList ? flowList(r.from) : str(r.from[0]!)}`,
    r.toBlock ? `    to:\n${toEntries.map(([k, v]) => `      ${k}: ${v}`).join("\n")}` : `    to: { ${toEntries.map(([k, v]) => `${k}: ${v}`).join(", ")} }`,
    `    action: ${r.action}`,
  ];
  if (r.http !== null) {
    lines.push("    http:");
    if (r.http.methods !== null) lines.push(`      methods: ${flowList(r.http.methods)}`);
    if (r.http.paths !== null) lines.push(`      paths: ${flowList(r.http.paths)}`);
  }
  if (r.serverId !== null) lines.push(`    mtls: { server_id: ${str(r.serverId)} }`);
  if (r.ca !== null) lines.push(`    ca: ${r.ca}`);
  if (r.tools !== null) {
    const parts = [r.tools.allow === null ? "" : `allow: ${flowList(r.tools.allow)}`, r.tools.deny === null ? "" : `deny: ${flowList(r.tools.deny)}`];
    lines.push(`    mcp: { tools: { ${parts.filter((p) => p !== "").join(", ")} } }`);
  }
  if (r.inject) lines.push(`    inject: { headers: { X-Api-Key: "\${secret:key_${i}}" } }`);
  if (r.upstream !== null) lines.push(`    upstream: { port: ${r.upstream} }`);
  if (r.proxy !== null) lines.push(`    proxy: { ${r.proxy.map(([k, text]) => `${k}: ${text}`).join(", ")} }`);
  return lines.join("\n");
}

export function policyYaml(rules: readonly RuleSpec[], workloads: boolean): string {
  const head = ["trust_domain: example.org"];
  if (workloads) head.push("workloads:", "  - name: agent", `    id: ${TD}/agent/x`, '    selectors: ["unix:uid:1001"]');
  if (rules.some((r) => r.serverId?.startsWith("spiffe://partner.com") === true)) {
    head.push("federation:", "  - trust_domain: partner.com");
  }
  if (rules.length === 0) return `${head.join("\n")}\negress: []\n`;
  return `${head.join("\n")}\negress:\n${rules.map(ruleYaml).join("\n")}\n`;
}

/** An ordered rule set (0-12 rules, mostly 4-12) and its policy file text. */
export const policyArb: fc.Arbitrary<PolicySpec> = fc
  .record({
    rules: fc.oneof({ weight: 1, arbitrary: fc.array(ruleArb, { maxLength: 3 }) }, { weight: 4, arbitrary: fc.array(ruleArb, { minLength: 4, maxLength: 12 }) }),
    workloads: fc.boolean(),
  })
  .map(({ rules, workloads }) => ({ rules, workloads, yaml: policyYaml(rules, workloads) }));

const ids = new Map<string, SpiffeId>();
function idOf(text: string): SpiffeId {
  let id = ids.get(text);
  if (id === undefined) ids.set(text, (id = SpiffeId.parse(text)));
  return id;
}

const nameArb = maybe(fc.constantFrom(...QUERY_NAMES).map((n) => normalizeServerName(n)), 3);
const httpArb = maybe(fc.record({ method: fc.constantFrom(...METHODS, "PATCH"), path: fc.constantFrom(...REQUEST_TARGETS).map(normalizeRequestPath) }));
const toolArb = maybe(fc.constantFrom(...TOOLS));

export const callerArb: fc.Arbitrary<SpiffeId> = fc.constantFrom(...CALLER_IDS).map(idOf);

/** Mostly `inside`, sometimes `outside` (when there is any). */
function edgy<T>(inside: readonly T[], outside: readonly T[]): fc.Arbitrary<T> {
  const a = fc.constantFrom(...inside);
  return outside.length === 0 ? a : fc.oneof({ weight: 8, arbitrary: a }, { weight: 1, arbitrary: fc.constantFrom(...outside) });
}

/** The first, middle and last address of `c`, and sometimes one beyond either end. */
function edgesOf(text: string): fc.Arbitrary<IpAddress> {
  const c = parseCidr(text);
  const max = (1n << (c.family === 4 ? 32n : 128n)) - 1n;
  const outside = [c.first - 1n, c.last + 1n].filter((v) => v >= 0n && v <= max);
  return edgy([c.first, (c.first + c.last) / 2n, c.last], outside).map((v) => parseIp(formatIp(c.family, v)));
}

/** Names `pattern` matches, and its anchor (which a wildcard does not match). */
function namesFor(pattern: string): string[] {
  const h = parseHostPattern(pattern);
  return h.kind === "exact" ? [h.name] : [`q.${h.name}`, `p.q.${h.name}`, h.name];
}

/** The callers `patterns` match (each of FROM_PATTERNS matches at least one). */
function callersFor(patterns: readonly string[]): string[] {
  const ms = patterns.map(parsePattern);
  return CALLER_IDS.filter((c) => ms.some((m) => m.matches(idOf(c))));
}

/** A query aimed at rule `r`: a caller it names, its protocol, a port at or just beyond its edges, its destination. */
function aimedAt(r: RuleSpec, address: fc.Arbitrary<IpAddress>, withAddress: boolean): fc.Arbitrary<Query> {
  const ports = parsePortRange(r.port);
  const outside = [ports.lo - 1, ports.hi + 1].filter((p) => p >= 1 && p <= 65535);
  const port = edgy([ports.lo, ports.hi, ports.lo + Math.floor((ports.hi - ports.lo) / 3)], outside);
  const own = "cidr" in r.to ? edgesOf(r.to.cidr) : null;
  const addr = own === null ? address : fc.oneof({ weight: 10, arbitrary: own }, { weight: 1, arbitrary: address });
  return fc.record({
    from: fc.constantFrom(...callersFor(r.from)).map(idOf),
    proto: edgy([r.proto ?? "tcp"], ["tcp" as const, "udp" as const]),
    port,
    address: withAddress ? addr : maybe(addr, 12),
    name: "host" in r.to ? fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...namesFor(r.to.host)) }, { weight: 1, arbitrary: nameArb }) : nameArb,
    http: httpArb,
    tool: maybe(fc.constantFrom(...TOOLS), 2),
  });
}

/**
 * Queries: three in four aimed at one of `rules` (see aimedAt), the rest over the whole vocabulary.
 * `withAddress`: never a null address (what the kernel sees always has one). `from`: every query
 * from that caller, aimed only at the rules that apply to it.
 */
export function queryArb(rules: readonly RuleSpec[] = [], o: { withAddress?: boolean; from?: SpiffeId } = {}): fc.Arbitrary<Query> {
  const withAddress = o.withAddress ?? false;
  const address = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...ADDRESSES).map(parseIp) },
    { weight: 1, arbitrary: fc.oneof(fc.ipV4(), fc.ipV6()).map(parseIp) },
  );
  const anywhere = fc.record({
    from: callerArb,
    proto: fc.constantFrom("tcp" as const, "tcp" as const, "tcp" as const, "udp" as const),
    port: fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...QUERY_PORTS) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 65535 }) }),
    address: withAddress ? address : maybe(address, 5),
    name: nameArb,
    http: httpArb,
    tool: toolArb,
  });
  const from = o.from;
  const targets = from === undefined ? rules : rules.filter((r) => callersFor(r.from).includes(from.toString()));
  const arb = targets.length === 0 ? anywhere : fc.oneof({ weight: 1, arbitrary: anywhere }, { weight: 3, arbitrary: fc.constantFrom(...targets).chain((r) => aimedAt(r, address, withAddress)) });
  return from === undefined ? arb : arb.map((q) => ({ ...q, from }));
}

/** Only the fields a connection is decided on before HTTP: what varies without moving the kernel's verdict. */
export const requestFieldsArb = fc.record({ name: nameArb, http: httpArb, tool: toolArb });

// ---- deterministic generators for bench/policy.ts ----

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const BENCH_CALLERS: readonly string[] = Array.from({ length: 10 }, (_, i) => `${TD}/svc/s${i}`);

/**
 * `n` rules: 20 % exact hosts, 10 % "*." and 10 % "**." wildcards, 35 % IPv4 and 25 % IPv6 ranges
 * (prefixes /16../32 and /40../128, inside 10.0.0.0/8 and 2001:db8::/32, so they nest and overlap);
 * ports single or ranges; from one caller, the pattern of all ten, or two callers; 5 % of the host
 * rules have http conditions; a few UDP ranges.
 */
export function benchPolicy(n: number, seed: number): string {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));
  const rules: string[] = [];
  for (let i = 0; i < n; i++) {
    const x = rnd();
    const from = x < 0.7 ? str(pick(BENCH_CALLERS)) : x < 0.9 ? str(`${TD}/svc/*`) : flowList([pick(BENCH_CALLERS), pick(BENCH_CALLERS)].filter((c, k, a) => a.indexOf(c) === k));
    const lo = pick([80, 443, 8000, 8443, 9000, 5432]);
    const port = rnd() < 0.6 ? String(lo) : rnd() < 0.85 ? `${lo}-${lo + int(1, 1000)}` : "any";
    const kind = rnd();
    let to: string;
    let action: string;
    let extra = "";
    if (kind < 0.4) {
      const domain = `d${int(0, 199)}.example.com`;
      const host = kind < 0.2 ? `h${i}.${domain}` : kind < 0.3 ? `*.${domain}` : `**.${domain}`;
      to = `host: ${str(host)}, port: ${str(port)}`;
      action = pick(["intercept", "tls", "passthrough", "deny", "mtls"]);
      if (action === "mtls") extra = `\n    mtls: { server_id: "${TD}/svc/upstream" }`;
      else if (action === "intercept" && rnd() < 0.25) extra = `\n    http: { methods: [GET, POST], paths: ["/v1/**", "/api/*/items"] }`;
    } else if (kind < 0.75) {
      const prefix = int(16, 32);
      const value = (BigInt(0x0a000000 + int(0, 0xffffff)) >> BigInt(32 - prefix)) << BigInt(32 - prefix);
      const udp = rnd() < 0.05;
      to = `cidr: ${formatIp(4, value)}/${prefix}, port: ${str(port)}${udp ? ", proto: udp" : ""}`;
      action = udp ? pick(["deny", "direct"]) : pick(["direct", "deny", "passthrough", "tls"]);
    } else {
      const prefix = int(40, 128);
      const low = (BigInt(int(0, 0xffff)) << 80n) | (BigInt(int(0, 0xffffffff)) << 32n) | BigInt(int(0, 0xffffffff));
      const value = (((0x20010db8n << 96n) | low) >> BigInt(128 - prefix)) << BigInt(128 - prefix);
      to = `cidr: ${str(`${formatIp(6, value)}/${prefix}`)}, port: ${str(port)}`;
      action = pick(["direct", "deny", "passthrough", "tls"]);
    }
    rules.push(`  - name: b${i}\n    from: ${from}\n    to: { ${to} }\n    action: ${action}${extra}`);
  }
  return `trust_domain: example.org\negress:\n${rules.join("\n")}\n`;
}

function randomIn(rnd: () => number, first: bigint, last: bigint): bigint {
  const span = last - first + 1n;
  const r = (BigInt(Math.floor(rnd() * 2 ** 32)) << 96n) | (BigInt(Math.floor(rnd() * 2 ** 32)) << 64n) | (BigInt(Math.floor(rnd() * 2 ** 32)) << 32n) | BigInt(Math.floor(rnd() * 2 ** 32));
  return first + (r % span);
}

/**
 * `count` queries: 80 % aimed at a random rule (a caller its `from` matches, a name or address its
 * destination matches, a port in its range; a third of those to http rules carry a request), 20 %
 * at nothing (names under nomatch.test, addresses in 198.18.0.0/15 and 3fff::/20, no rule's).
 */
export function benchQueries(rules: readonly EgressRule[], count: number, seed: number): Query[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const callers = BENCH_CALLERS.map(idOf);
  const out: Query[] = [];
  for (let i = 0; i < count; i++) {
    if (rnd() < 0.2 || rules.length === 0) {
      const v6 = rnd() < 0.3;
      const address = parseIp(v6 ? formatIp(6, randomIn(rnd, 0x3fffn << 112n, (0x3fffn << 112n) | ((1n << 108n) - 1n))) : formatIp(4, randomIn(rnd, 0xc6120000n, 0xc613ffffn)));
      out.push({ from: pick(callers), proto: "tcp", port: pick([80, 443, 8443, 22]), address, name: rnd() < 0.5 ? `n${i}.nomatch.test` : null });
      continue;
    }
    const r = pick(rules);
    const mine = callers.filter((c) => r.from.some((p) => p.matcher.matches(c)));
    const port = r.ports.lo + Math.floor(rnd() * (r.ports.hi - r.ports.lo + 1));
    if (r.to.kind === "host") {
      const h = r.to.host;
      const name = h.kind === "exact" ? h.name : h.kind === "one" ? `w${i % 97}.${h.name}` : `a${i % 13}.b.${h.name}`;
      const http = r.http !== null && rnd() < 0.33 ? { method: pick(["GET", "POST", "PUT"]), path: pick(["/v1/a", "/api/x/items", "/other"]) } : null;
      out.push({ from: pick(mine), proto: r.proto, port, address: parseIp(formatIp(4, randomIn(rnd, 0xcb007100n, 0xcb0071ffn))), name, http });
    } else {
      const address = parseIp(formatIp(r.to.cidr.family, randomIn(rnd, r.to.cidr.first, r.to.cidr.last)));
      out.push({ from: pick(mine), proto: r.proto, port, address, name: r.proto === "tcp" && rnd() < 0.3 ? `n${i}.other.test` : null });
    }
  }
  return out;
}
