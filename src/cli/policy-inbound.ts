/**
 * `tidegate policy explain --inbound NAME` (docs/policy.md, "tidegate policy explain"): what an
 * inbound listener does with a client, read from the policy alone, in the order the listener
 * decides (src/proxy/inbound-listener.ts, src/mcp/gate.ts):
 * 1. the client's trust domain must be ours or named under `federation:` (`client_untrusted`;
 *    at run time its bundle must also be current, which only the agent knows);
 * 2. its SPIFFE ID must match one of `allow` (`client_not_allowed`);
 * 3. with --tool, --resource or --prompt, the listener's `mcp:` filter of that kind decides
 *    (`tool_denied`, `tool_not_allowed`, `resource_denied`, `resource_not_allowed`,
 *    `resource_bad_uri`, `prompt_denied`, `prompt_not_allowed`); without `mcp:` the listener
 *    reads no MCP and everything passes.
 */
import { boundsText, type InboundRule, type McpRules, type Policy, type ToolFilter } from "../policy/index.ts";
import type { SpiffeId } from "../spiffe/index.ts";
import { normalizeResourceUri } from "../mcp/index.ts";
import { UsageError } from "./usage-error.ts";

export interface InboundAsk {
  readonly from: SpiffeId;
  readonly tool?: string;
  readonly resource?: string;
  readonly prompt?: string;
}

export interface InboundExplanation {
  readonly rule: InboundRule;
  readonly verdict: "allow" | "deny";
  /** The refusal's reason code; null when allowed. */
  readonly reason: string | null;
  /** One line: why. */
  readonly summary: string;
  /** The `allow` pattern the client matched; null when none did (or it was refused before). */
  readonly matched: string | null;
  /** The MCP item asked about, and what decided it; null when none was asked. */
  readonly mcp: { readonly kind: "tool" | "resource" | "prompt"; readonly name: string; readonly by: string } | null;
}

/** The inbound rule NAME of `p`; a usage error naming the rules there are when there is none. */
export function inboundRule(p: Policy, name: string): InboundRule {
  const r = p.inbound.find((x) => x.name === name);
  if (r !== undefined) return r;
  const there = p.inbound.map((x) => x.name);
  throw new UsageError(`--inbound ${JSON.stringify(name.slice(0, 80))}: ${p.file} has no inbound rule of that name (${there.length > 0 ? `it has ${there.join(", ")}` : "it has none"})`);
}

export function explainInbound(p: Policy, rule: InboundRule, ask: InboundAsk): InboundExplanation {
  const base = { rule, matched: null, mcp: null };
  const td = ask.from.trustDomain;
  if (!td.equals(p.trustDomain) && !p.federation.some((f) => f.trustDomain.equals(td))) {
    return { ...base, verdict: "deny", reason: "client_untrusted", summary: `deny: ${td.name} is neither this trust domain (${p.trustDomain.name}) nor named under federation:, so no SVID of it verifies` };
  }
  const matched = rule.allow.find((a) => a.matcher.matches(ask.from))?.text ?? null;
  if (matched === null) {
    return { ...base, verdict: "deny", reason: "client_not_allowed", summary: `deny: ${ask.from.toString()} matches none of allow: ${rule.allow.map((a) => a.text).join(", ")}` };
  }
  const bounds = boundsText(rule.bounds);
  return { ...base, matched, ...mcpVerdict(rule.mcp, ask, `allow: listener ${rule.name} accepts the client (allow ${matched}${bounds === "" ? "" : `; ${bounds}`})`, `listener ${rule.name}`) };
}

export type McpAnswer = Pick<InboundExplanation, "verdict" | "reason" | "summary" | "mcp">;

/**
 * What `mcp` (a rule's `mcp:`; null: the carrier reads no MCP) decides of the tool, resource or
 * prompt `ask` names, as the gate would (src/mcp/gate.ts); `accepted` begins an allow's summary,
 * `of` names the rule in a deny's.
 */
export function mcpVerdict(mcp: McpRules | null, ask: Omit<InboundAsk, "from">, accepted: string, of: string): McpAnswer {
  const kind = ask.tool !== undefined ? "tool" : ask.resource !== undefined ? "resource" : ask.prompt !== undefined ? "prompt" : null;
  if (kind === null) return { verdict: "allow", reason: null, summary: accepted, mcp: null };
  const raw = (kind === "tool" ? ask.tool : kind === "resource" ? ask.resource : ask.prompt)!;
  if (mcp === null) return { verdict: "allow", reason: null, summary: `${accepted}; it has no mcp:, so it reads no MCP and every ${kind} passes`, mcp: { kind, name: raw, by: "no mcp:" } };
  const filter: ToolFilter | null = kind === "tool" ? mcp.tools : kind === "resource" ? mcp.resources : mcp.prompts;
  const name = kind === "resource" && filter !== null ? normalizeResourceUri(raw) : raw;
  if (name === null) {
    return { verdict: "deny", reason: "resource_bad_uri", summary: `deny: resource ${JSON.stringify(raw.slice(0, 256))} is not a URI the rule can decide (dot segments, encoded slashes, no scheme)`, mcp: { kind, name: raw, by: `mcp.resources` } };
  }
  const by = `mcp.${kind}s`;
  const d = filter?.decide(name) ?? "allowed";
  if (d === "allowed") return { verdict: "allow", reason: null, summary: `${accepted}; ${kind} ${name} ${filter === null ? `passes (no ${by} filter)` : `is allowed by ${by}`}`, mcp: { kind, name, by } };
  return { verdict: "deny", reason: `${kind}_${d}`, summary: `deny: ${kind} ${name} is ${d === "denied" ? "denied" : "not allowed"} by ${by} of ${of}`, mcp: { kind, name, by } };
}

export function renderInbound(e: InboundExplanation, from: SpiffeId): string {
  const r = e.rule;
  const forward = r.forward.kind === "unix" ? `unix:${r.forward.path}` : `${r.forward.host}:${r.forward.port}`;
  return [
    `decision   ${e.summary}`,
    `rule       ${r.name} (line ${r.line}), inbound`,
    `caller     ${from.toString()}`,
    `listener   ${r.listen.host}:${r.listen.port} as ${r.id.toString()}, forwarding to ${forward}`,
    "",
  ].join("\n");
}
