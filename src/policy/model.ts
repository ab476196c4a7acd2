/**
 * The loaded policy: immutable values built once by `loadPolicy` (load.ts) and read by the engine,
 * the kernel's share and the proxy. Field names follow docs/policy.md; every rule keeps its name
 * (it reaches the audit log) and its line (for messages).
 */
import type { Matcher, SpiffeId, TrustDomain } from "../spiffe/index.ts";
import type { Cidr, IpAddress } from "./address.ts";
import type { HostPattern } from "./host-name.ts";
import type { PathPattern } from "./http-match.ts";
import type { PortRange } from "./ports.ts";
import type { HeaderTemplate } from "./inject.ts";
import { formatDuration } from "../runtime/duration.ts";

export const ACTIONS = ["deny", "direct", "passthrough", "tls", "mtls", "intercept"] as const;
export type Action = (typeof ACTIONS)[number];

/**
 * The TLS key exchange of an upstream leg (`upstream.key_exchange`). `hybrid`, the default: the
 * post-quantum hybrid X25519MLKEM768 first, with X25519, P-256 and P-384 for servers without it
 * (the runtime's BoringSSL default). `classical`: X25519, P-256 and P-384 only; a smaller
 * ClientHello, for a server that cannot take the hybrid's, and 60-80 µs less CPU per handshake
 * over both ends (docs/benchmarks.md), with no protection against a future quantum computer for
 * the traffic recorded now.
 */
export const KEY_EXCHANGES = ["hybrid", "classical"] as const;
export type KeyExchange = (typeof KEY_EXCHANGES)[number];
export type Proto = "tcp" | "udp";

export type Destination =
  | { readonly kind: "host"; readonly host: HostPattern }
  | { readonly kind: "cidr"; readonly cidr: Cidr };

/** A SPIFFE ID pattern as written, with its matcher. */
export interface IdPattern {
  readonly text: string;
  readonly matcher: Matcher;
}

export interface HttpMatch {
  /** null: any method. */
  readonly methods: readonly string[] | null;
  /** null: any path. */
  readonly paths: readonly PathPattern[] | null;
}

/** MCP tool filter of a rule: a tool is allowed when `allow` is null or names it, and `deny` does not. */
export interface ToolFilter {
  /** Names or glob patterns (`*` any run, `?` one character). */
  readonly allow: ReadonlySet<string> | null;
  readonly deny: ReadonlySet<string>;
  /** The filter compiled once (src/mcp/tool-filter.ts): allowed, denied, or not in allow. */
  readonly decide: (tool: string) => "allowed" | "denied" | "not_allowed";
}

/**
 * A rule's `mcp:` (issue 10): MCP messages on its connections are parsed and decided. Each filter
 * null: everything of that kind. `resources` matches URIs, `prompts` prompt names.
 */
export interface McpRules {
  readonly tools: ToolFilter | null;
  readonly resources: ToolFilter | null;
  readonly prompts: ToolFilter | null;
}

export interface EgressRule {
  /** Position in `egress:`, from 0: the order rules are tried in. */
  readonly index: number;
  readonly name: string;
  readonly line: number;
  readonly from: readonly IdPattern[];
  readonly to: Destination;
  readonly ports: PortRange;
  readonly proto: Proto;
  readonly action: Action;
  /** Request-level conditions; a rule that has them needs the proxy to see HTTP (docs/policy.md). */
  readonly http: HttpMatch | null;
  /** `mcp.tools` (also in `mcp`), which the policy engine decides tool calls with. */
  readonly tools: ToolFilter | null;
  /** `mcp:`, null when the rule has none (then nothing of MCP is parsed on its connections). */
  readonly mcp: McpRules | null;
  readonly inject: readonly HeaderTemplate[];
  /**
   * `inject.placeholder_headers`, lowercase: the only request headers in which a placeholder for a
   * secret of `inject` is swapped (inject.ts DEFAULT_PLACEHOLDER_HEADERS when absent); elsewhere it
   * is refused (`placeholder_header_not_allowed`).
   */
  readonly placeholderHeaders: readonly string[];
  /** `tls` and `intercept` without mtls: a CA file instead of the system roots. */
  readonly ca: string | null;
  /** `mtls`, and `intercept` with `mtls:`: the peer's SPIFFE ID. */
  readonly serverId: SpiffeId | null;
  /** `upstream.port`: where the proxy connects instead of the port the workload dialled. */
  readonly upstreamPort: number | null;
  /** `upstream.key_exchange`: the TLS key exchange the upstream leg offers (KEY_EXCHANGES). */
  readonly keyExchange: KeyExchange;
  /**
   * `upgrade`: the protocols an intercepted request may switch to (only "websocket"); empty: an
   * upgrade request is refused. After the switch the connection is a tunnel: nothing more is parsed.
   */
  readonly upgrade: readonly string[];
  /** The rule's own `proxy:` bounds (connect, first byte, idle), over the top-level ones; null: none. */
  readonly bounds: RuleBounds | null;
}

export type ForwardTarget =
  | { readonly kind: "tcp"; readonly host: string; readonly port: number }
  | { readonly kind: "unix"; readonly path: string };

export interface InboundRule {
  readonly index: number;
  readonly name: string;
  readonly line: number;
  /** The SPIFFE ID the listener presents: the agent must hold an SVID for it (an entry of its node). */
  readonly id: SpiffeId;
  readonly listen: { readonly host: string; readonly port: number };
  readonly forward: ForwardTarget;
  readonly allow: readonly IdPattern[];
  readonly proxyProtocol: boolean;
  /** Parse HTTP/1.1 and tell the backend who called in x-forwarded-client-cert (src/proxy/xfcc.ts). */
  readonly forwardClientCert: boolean;
  readonly tools: ToolFilter | null;
  readonly mcp: McpRules | null;
  /** The listener's own `proxy:` bounds (the four), over the top-level ones; null: none. */
  readonly bounds: RuleBounds | null;
}

/** `stdio[]`: who may use a stdio MCP server started with `tidegate run --mcp-stdio`, and which of its tools. */
export interface StdioRule {
  readonly index: number;
  readonly name: string;
  readonly line: number;
  /** The launching client's identity. */
  readonly from: readonly IdPattern[];
  /** The server workload's identity. */
  readonly server: readonly IdPattern[];
  readonly mcp: McpRules;
}

export interface Workload {
  readonly name: string;
  readonly id: SpiffeId;
  /** As written; `tidegate:workload:NAME` is implied and not listed here. */
  readonly selectors: readonly string[];
  /** The user the workload runs as (`tidegate run --user` default), or null. */
  readonly user: string | null;
  /** Non-root callers of agent.sock allowed to `run` it (DESIGN.md section 2). */
  readonly runBy: { readonly users: readonly string[]; readonly groups: readonly string[] };
}

/** A trust domain the rules may name besides ours; its bundle comes from the server (docs/federation.md). */
export interface Federation {
  readonly trustDomain: TrustDomain;
}

export interface DnsServerSetting {
  readonly host: string;
  readonly port: number;
}

export interface DnsSettings {
  /** null: the nameservers of /etc/resolv.conf. */
  readonly servers: readonly DnsServerSetting[] | null;
  /** Static names; they win over DNS for that name. */
  readonly hosts: ReadonlyMap<string, readonly IpAddress[]>;
}

export interface AgentSettings {
  readonly server: string | null;
  readonly serverFingerprint: string | null;
  readonly trustBundle: string | null;
  readonly joinTokenFile: string | null;
  readonly syncIntervalMs: number | null;
  readonly retryMaxMs: number | null;
  /** The group whose members may call `tidegate run` for workloads whose `run_by` names them (default "tidegate"). */
  readonly runGroup: string;
  /** How long a stopping agent lets connections in flight finish before it closes them (`drain_timeout`); read from the policy in force at the stop. */
  readonly drainTimeoutMs: number;
  /**
   * How many connections one workload (its cgroup) may hold open through the egress proxy at once
   * (`max_connections_per_workload`); the kernel refuses the next connect with EPERM. Read from
   * the policy in force, so a reload changes it.
   */
  readonly maxConnectionsPerWorkload: number;
}

export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
/**
 * The default bound on a workload's open redirected connections. A workload's records in the
 * kernel's map (65,536, bpf/maps.h) are at most this many, besides those the listener's accept
 * queue holds, so it takes 64 workloads at the bound, all waiting on the listener at once, to fill it.
 */
export const DEFAULT_MAX_OPEN = 1024;
/** The highest bound a policy may set: the kernel's record map holds 65,536. */
export const MAX_OPEN_LIMIT = 65_536;

/**
 * `proxy:`: the bounds on every upstream leg of the egress proxy and on every inbound listener's
 * backend leg (docs/proxy.md, "Timeouts"). There is no bound on a connection's whole duration: one
 * that keeps moving bytes lives on. Read from the policy in force when a connection arrives.
 */
export interface ProxySettings {
  /** From connect to a leg ready for bytes: connected, and for TLS legs handshaken and verified. */
  readonly connectTimeoutMs: number;
  /** From the last byte sent to the upstream to the first byte it sends back, while it has not answered. */
  readonly firstByteTimeoutMs: number;
  /** Without a byte either way. */
  readonly idleTimeoutMs: number;
  /**
   * Where the proxy parses HTTP (interception, inbound `forward_client_cert` and `mcp:`): a
   * connection's first request head must be whole within it of the connection being handed to
   * the parser, and each later one within it of its first byte (slowloris).
   */
  readonly headerTimeoutMs: number;
}

export const DEFAULT_PROXY_SETTINGS: ProxySettings = Object.freeze({ connectTimeoutMs: 10_000, firstByteTimeoutMs: 30_000, idleTimeoutMs: 300_000, headerTimeoutMs: 30_000 });

/** A rule's `proxy:` (docs/policy.md): each bound it gives replaces the top-level one for its connections. */
export type RuleBounds = Partial<ProxySettings>;

/** Each bound's key under `proxy:` and its field here, in the order docs/policy.md gives them. */
export const BOUND_KEYS = [["connect_timeout", "connectTimeoutMs"], ["first_byte_timeout", "firstByteTimeoutMs"], ["idle_timeout", "idleTimeoutMs"], ["header_timeout", "headerTimeoutMs"]] as const;

/** A rule's own bounds as its `proxy:` gives them ("first_byte_timeout 10m, idle_timeout 1h"), for summaries; "" without. */
export function boundsText(rule: RuleBounds | null): string {
  if (rule === null) return "";
  return BOUND_KEYS.flatMap(([key, k]) => (rule[k] === undefined ? [] : [`${key} ${formatDuration(rule[k])}`])).join(", ");
}

/** The bounds of a connection that `rule`'s bounds (null: none) apply to, over `base`. */
export function boundsOf(base: ProxySettings, rule: RuleBounds | null): ProxySettings {
  return rule === null ? base : Object.freeze({ ...base, ...rule });
}

/** `audit:` (docs/audit.md, "Settings"); read when the agent starts. */
export interface AuditSettings {
  /** null: the instance's audit folder (/var/log/tidegate[-INSTANCE]). */
  readonly dir: string | null;
  readonly checkpointEvery: number | null;
  readonly checkpointIntervalMs: number | null;
  readonly maxFileBytes: number | null;
  /** What the agent does while the log cannot be written: refuse new connections (default) or serve on, alarmed. */
  readonly onFailure: "refuse" | "serve";
  /** Continuous export to an OTLP/HTTP logs endpoint. */
  readonly exportOtlp: string | null;
}

export const DEFAULT_AUDIT_SETTINGS: AuditSettings = Object.freeze({ dir: null, checkpointEvery: null, checkpointIntervalMs: null, maxFileBytes: null, onFailure: "refuse", exportOtlp: null });

export interface Policy {
  readonly file: string;
  readonly trustDomain: TrustDomain;
  readonly agent: AgentSettings;
  readonly audit: AuditSettings;
  readonly proxy: ProxySettings;
  readonly workloads: readonly Workload[];
  readonly egress: readonly EgressRule[];
  readonly inbound: readonly InboundRule[];
  readonly stdio: readonly StdioRule[];
  readonly federation: readonly Federation[];
  readonly dns: DnsSettings;
}
