/**
 * The policy file's shape (docs/policy.md, "Keys"): every mapping is strict, so an unknown or
 * misspelt key is an error and never a silently ignored restriction; every value is parsed by the
 * module that owns its syntax (addresses, host patterns, ports, paths, SPIFFE IDs and patterns,
 * header templates). Checks that span fields (which keys go with which action, unique names,
 * trust domains) follow in load.ts, with the same file:line: path: why errors.
 */
import * as v from "valibot";
import { parsePattern, SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { parseDuration } from "../runtime/duration.ts";
import { parseHostPort } from "../server/host-port.ts";
import { parseCidr, parseIp } from "./address.ts";
import { parseHostPattern } from "./host-name.ts";
import { parseMethod, parsePathPattern } from "./http-match.ts";
import { parseHeaderTemplate, parsePlaceholderHeaders } from "./inject.ts";
import { parsePort, parsePortRange } from "./ports.ts";
import { ACTIONS, KEY_EXCHANGES, MAX_OPEN_LIMIT } from "./model.ts";
import { converted, convertedAny, mapping, transformed } from "./source.ts";
import { selectorProblem } from "../attest/selector.ts";
import { RULE_NAME, WORKLOAD_NAME } from "./names.ts";
import { quoteUrl } from "../errors.ts";

/** A tool name, or a glob of one: `*` any run of characters, `?` one (src/mcp/tool-filter.ts). */
const TOOL = /^[A-Za-z0-9_.*?-]{1,128}$/;
const FINGERPRINT = /^(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/;
const ACCOUNT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$/;

const name = v.pipe(v.string(), v.regex(RULE_NAME, "is not a name (1-64 of letters, digits, '_', '.', '-', starting with a letter or digit)"));
const nonEmpty = <T extends v.GenericSchema>(item: T) => v.pipe(v.array(item), v.minLength(1, "must not be empty"));
const absolutePath = v.pipe(v.string(), v.regex(/^\/[^\u0000]*$/, "is not an absolute path"));

export const spiffeId = converted((t) => SpiffeId.parse(t));
export const trustDomain = converted((t) => TrustDomain.parse(t));
const idPattern = converted((text) => ({ text, matcher: parsePattern(text) }));
/** One pattern or a non-empty list of them. */
const idPatterns = convertedAny((x) => {
  const list = typeof x === "string" ? [x] : x;
  if (!Array.isArray(list) || list.length === 0 || !list.every((t) => typeof t === "string")) {
    throw new Error("expected a SPIFFE ID pattern or a non-empty list of them");
  }
  return list.map((text: string) => ({ text, matcher: parsePattern(text) }));
});
/** A URL of one of `schemes`, without a user name or password (a URL lands in logs and errors). */
const urlOf = (schemes: readonly string[], named: string) =>
  converted((t) => {
    let u: URL;
    try {
      u = new URL(t);
    } catch {
      throw new Error(`${quoteUrl(t)} is not a URL`);
    }
    // quoteUrl: never the user name or password of a URL (the message reaches logs and policy_rejected)
    if (!schemes.includes(u.protocol)) throw new Error(`${quoteUrl(t)} is not ${named} URL`);
    if (u.username !== "" || u.password !== "") throw new Error("a URL with a user name or password is refused (it would be logged)");
    return u.toString();
  });
/** An OTLP/HTTP endpoint. */
const httpUrl = urlOf(["http:", "https:"], "an http:// or https://");
export const httpsUrl = urlOf(["https:"], "an https://");
const duration = converted((t) => parseDuration(t, "duration"));
/** Longest bound a timer can hold (2^31 - 1 ms is about 24.8 days). */
const MAX_BOUND_MS = 24 * 86_400_000;
/** A bound on a wait: at most 24 days; more than 0 unless `zero` is "allowed". */
const bound = (zero: "allowed" | "refused") =>
  converted((t) => {
    const ms = parseDuration(t, "duration");
    if (zero === "refused" && ms === 0) throw new Error(`${JSON.stringify(t)}: must be longer than 0`);
    if (ms > MAX_BOUND_MS) throw new Error(`${JSON.stringify(t)}: must be at most 24d`);
    return ms;
  });
/** The bounds on a leg (`proxy:`, top level and per rule). */
const LEG_BOUNDS = {
  connect_timeout: v.optional(bound("refused")),
  first_byte_timeout: v.optional(bound("refused")),
  idle_timeout: v.optional(bound("refused")),
};
const tool = v.pipe(v.string(), v.regex(TOOL, "is not an MCP tool name or pattern (1-128 of letters, digits, '_', '-', '.', and '*' or '?' as wildcards)"));
/** A resource URI or a glob of one (`*` any run, `?` one character): 1-2048 characters, no controls or spaces. */
const uriPattern = v.pipe(v.string(), v.regex(/^[^\u0000-\u0020\u007f]{1,2048}$/, "is not a resource URI or pattern (1-2048 characters, no spaces or control characters)"));
const filterOf = <T extends v.GenericSchema>(item: T) => mapping({ allow: v.optional(v.array(item)), deny: v.optional(v.array(item)) });
const mcp = mapping({
  tools: v.optional(filterOf(tool)),
  resources: v.optional(filterOf(uriPattern)),
  prompts: v.optional(filterOf(tool)),
});
const listen = converted((t) => {
  const hp = parseHostPort(t);
  if (hp.port === 0) throw new Error(`${JSON.stringify(t)}: port 0 is not a fixed port`);
  return hp;
});
const forward = converted((t) => {
  if (t.startsWith("unix:")) {
    const path = t.slice(5);
    if (!path.startsWith("/") || path.includes("\u0000")) throw new Error(`${JSON.stringify(t.slice(0, 64))}: unix: needs an absolute path`);
    return { kind: "unix" as const, path };
  }
  const hp = parseHostPort(t);
  if (hp.port === 0) throw new Error(`${JSON.stringify(t)}: port 0 is not a fixed port`);
  return { kind: "tcp" as const, host: hp.host, port: hp.port };
});
const dnsServer = converted((t) => {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  const hostPort = bracketed === null ? /^([0-9.]+):(\d+)$/.exec(t) : null;
  const host = bracketed?.[1] ?? hostPort?.[1] ?? t;
  const port = bracketed?.[2] ?? hostPort?.[2];
  const address = parseIp(host);
  return { host: address.text, port: port === undefined ? 53 : parsePort(port) };
});

const to = mapping({
  host: v.optional(converted(parseHostPattern)),
  cidr: v.optional(converted(parseCidr)),
  port: convertedAny(parsePortRange),
  proto: v.optional(v.picklist(["tcp", "udp"])),
});

const headers = transformed(v.record(v.string(), v.string()), (h) => Object.entries(h).map(([k, t]) => parseHeaderTemplate(k, t)));
/** The only headers a placeholder is swapped in (inject.ts DEFAULT_PLACEHOLDER_HEADERS when absent); lowercase. */
const placeholderHeaders = transformed(v.array(v.string()), parsePlaceholderHeaders);

export const EgressRuleSchema = mapping({
  name,
  from: idPatterns,
  to,
  action: v.picklist(ACTIONS),
  mtls: v.optional(mapping({ server_id: spiffeId })),
  ca: v.optional(absolutePath),
  inject: v.optional(mapping({ headers, placeholder_headers: v.optional(placeholderHeaders) })),
  http: v.optional(
    mapping({
      methods: v.optional(nonEmpty(converted(parseMethod))),
      paths: v.optional(nonEmpty(converted(parsePathPattern))),
    }),
  ),
  mcp: v.optional(mcp),
  upstream: v.optional(mapping({ port: v.optional(convertedAny(parsePort)), key_exchange: v.optional(v.picklist(KEY_EXCHANGES)) })),
  /** Protocols a request may switch to (RFC 9110 section 7.8). Only websocket: after h2c, say, requests would pass unchecked. */
  upgrade: v.optional(nonEmpty(v.picklist(["websocket"]))),
  /** The rule's own bounds; no header_timeout: a connection's first head is read before its rule is known. */
  proxy: v.optional(mapping(LEG_BOUNDS)),
});

export const InboundRuleSchema = mapping({
  name,
  id: spiffeId,
  listen,
  forward,
  allow: idPatterns,
  proxy_protocol: v.optional(v.boolean()),
  forward_client_cert: v.optional(v.boolean()),
  mcp: v.optional(mcp),
  proxy: v.optional(mapping({ ...LEG_BOUNDS, header_timeout: v.optional(bound("refused")) })),
});

/** `stdio[]`: MCP over a stdio server's pipes (`tidegate run --mcp-stdio`): who may use which server's tools. */
export const StdioRuleSchema = mapping({
  name,
  /** The launching client: the identity the `tidegate run` process attests to. */
  from: idPatterns,
  /** The server: the SPIFFE ID of the workload `tidegate run` starts. */
  server: idPatterns,
  mcp,
});

/** A selector an attestor can give (src/attest/selector.ts): a typo would make the workload's entry select nothing. */
const selector = converted((text) => {
  const why = selectorProblem(text);
  if (why !== null) throw new Error(why);
  return text;
});

const workloadName = v.pipe(v.string(), v.regex(WORKLOAD_NAME, "is not a workload name (1-63 of letters, digits, '_', '.', '-', starting with a letter or digit)"));

export const WorkloadSchema = mapping({
  name: workloadName,
  id: spiffeId,
  selectors: v.optional(v.array(selector)),
  user: v.optional(v.pipe(v.string(), v.regex(ACCOUNT, "is not a user name or uid"))),
  run_by: v.optional(
    mapping({
      users: v.optional(v.array(v.pipe(v.string(), v.regex(ACCOUNT, "is not a user name or uid")))),
      groups: v.optional(v.array(v.pipe(v.string(), v.regex(ACCOUNT, "is not a group name or gid")))),
    }),
  ),
});

export const PolicySchema = mapping({
  trust_domain: trustDomain,
  agent: v.optional(
    mapping({
      server: v.optional(httpsUrl),
      server_fingerprint: v.optional(v.pipe(v.string(), v.regex(FINGERPRINT, "is not a SHA-256 fingerprint (64 hex digits, colons allowed)"))),
      trust_bundle: v.optional(absolutePath),
      join_token_file: v.optional(absolutePath),
      sync_interval: v.optional(duration),
      retry_max: v.optional(duration),
      run_group: v.optional(v.pipe(v.string(), v.regex(ACCOUNT, "is not a group name or gid"))),
      drain_timeout: v.optional(bound("allowed")),
      max_connections_per_workload: v.optional(v.pipe(v.number(), v.integer("is not a whole number"), v.minValue(1, "must be at least 1"), v.maxValue(MAX_OPEN_LIMIT, `must be at most ${MAX_OPEN_LIMIT}`))),
    }),
  ),
  proxy: v.optional(mapping({ ...LEG_BOUNDS, header_timeout: v.optional(bound("refused")) })),
  audit: v.optional(
    mapping({
      dir: v.optional(absolutePath),
      checkpoint_every: v.optional(v.pipe(v.number(), v.integer("is not a whole number"), v.minValue(1, "must be at least 1"), v.maxValue(1_000_000, "must be at most 1000000"))),
      checkpoint_interval: v.optional(duration),
      max_file_size: v.optional(v.pipe(v.number(), v.integer("is not a whole number of bytes"), v.minValue(4096, "must be at least 4096 bytes"))),
      on_failure: v.optional(v.picklist(["refuse", "serve"])),
      export: v.optional(mapping({ otlp: v.optional(httpUrl) })),
    }),
  ),
  workloads: v.optional(v.array(WorkloadSchema)),
  egress: v.optional(v.array(EgressRuleSchema)),
  inbound: v.optional(v.array(InboundRuleSchema)),
  stdio: v.optional(v.array(StdioRuleSchema)),
  federation: v.optional(
    v.array(
      // Only the name: the server fetches the bundle (server.yaml's federation:, docs/federation.md).
      mapping({ trust_domain: trustDomain }),
    ),
  ),
  dns: v.optional(
    mapping({
      servers: v.optional(v.array(dnsServer)),
      hosts: v.optional(v.record(v.string(), nonEmpty(converted(parseIp)))),
    }),
  ),
});

export type PolicyInput = v.InferOutput<typeof PolicySchema>;
export type EgressInput = v.InferOutput<typeof EgressRuleSchema>;
