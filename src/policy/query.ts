/**
 * What the engine is asked and what it answers (docs/policy.md, "Decisions").
 *
 * The combining rule, in one place (the engine, explain and the kernel's share all follow it):
 * 1. Rules are tried in file order; only rules whose `from` matches the caller count.
 * 2. A rule matches a connection when its protocol equals the query's, the port is in its range,
 *    and its destination matches: a host pattern matches the query's server name (SNI or Host;
 *    a connection that names none matches no host rule), a cidr the original address.
 * 3. The first matching rule decides. If it has `http:` conditions and the query carries no HTTP
 *    request (the proxy has not seen one yet), the answer is `inspect`: the proxy must terminate
 *    the connection and ask again for each request.
 * 4. For a request, rules with `http:` conditions match only when the method and the path match
 *    too; walking on past such a rule, the connection is being intercepted, so the rule that
 *    finally matches must be `intercept` or `deny`: any other action is refused
 *    (`not_interceptable`), because its bytes can no longer be passed on as they were sent.
 * 5. A rule with `mcp.tools` that allows the connection still refuses a `tools/call` of a tool it
 *    does not allow (`tool`); it is not a matching condition, so later rules are not tried.
 * 6. No matching rule: deny (`no_rule`).
 */
import type { SpiffeId } from "../spiffe/index.ts";
import type { IpAddress } from "./address.ts";
import { type Action, boundsText, type EgressRule, type Proto } from "./model.ts";

export interface HttpRequestInfo {
  readonly method: string;
  /** Normalized by `normalizeRequestPath` (http-match.ts). */
  readonly path: string;
}

export interface Query {
  readonly from: SpiffeId;
  readonly proto: Proto;
  readonly port: number;
  /** The original destination; null only when a caller asks about a name alone (explain). */
  readonly address: IpAddress | null;
  /** SNI or Host, normalized by `normalizeServerName`; null when the connection names none. */
  readonly name: string | null;
  /** The HTTP request, once the proxy has parsed one. */
  readonly http?: HttpRequestInfo | null;
  /** The tool of an MCP `tools/call`. */
  readonly tool?: string | null;
}

export type DenyReason =
  /** a `deny` rule matched */
  | "rule"
  /** no rule matched */
  | "no_rule"
  /** the rule's `mcp.tools` does not allow the tool */
  | "tool"
  /** rule 4 above */
  | "not_interceptable"
  /** the original address is not one the rule's host resolves to (DESIGN.md section 3) */
  | "address_not_resolved";

export type Decision =
  | { readonly verdict: "deny"; readonly rule: EgressRule | null; readonly reason: DenyReason }
  | { readonly verdict: "inspect"; readonly rule: EgressRule }
  | { readonly verdict: "allow"; readonly rule: EgressRule; readonly action: Exclude<Action, "deny">; readonly upstreamPort: number };

export const NO_RULE: Decision = Object.freeze({ verdict: "deny", rule: null, reason: "no_rule" });

/** Rule 5, then the allow itself. Shared by the engine and explain. */
export function decideWith(rule: EgressRule, q: Query, intercepted: boolean): Decision {
  if (rule.action === "deny") return { verdict: "deny", rule, reason: "rule" };
  if (intercepted && rule.action !== "intercept") return { verdict: "deny", rule, reason: "not_interceptable" };
  const tool = q.tool ?? null;
  if (tool !== null && rule.tools !== null && rule.tools.decide(tool) !== "allowed") {
    return { verdict: "deny", rule, reason: "tool" };
  }
  return { verdict: "allow", rule, action: rule.action, upstreamPort: rule.upstreamPort ?? q.port };
}

/**
 * The one-line summary used by the CLI and logs: "allow tls by rule X (upstream port P)", "deny
 * (no rule)"; a rule's non-default key exchange is named ("..., key exchange classical").
 */
export function describeDecision(d: Decision): string {
  if (d.verdict === "inspect") return `inspect: intercept and decide per request (rule ${d.rule.name} has http conditions)`;
  if (d.verdict === "allow") {
    const bounds = d.action === "direct" ? "" : boundsText(d.rule.bounds);
    return `allow ${d.action} by rule ${d.rule.name} (upstream port ${d.upstreamPort}${d.rule.keyExchange === "classical" ? ", key exchange classical" : ""}${bounds === "" ? "" : `, ${bounds}`})`;
  }
  switch (d.reason) {
    case "no_rule":
      return "deny: no rule matches";
    case "rule":
      return `deny by rule ${d.rule!.name}`;
    case "tool":
      return `deny: rule ${d.rule!.name} does not allow this MCP tool`;
    case "not_interceptable":
      return `deny: rule ${d.rule!.name} (${d.rule!.action}) needs the raw connection, but an earlier rule's http conditions had it intercepted`;
    case "address_not_resolved":
      return `deny: the original address is not one that rule ${d.rule!.name}'s host resolves to`;
  }
}
