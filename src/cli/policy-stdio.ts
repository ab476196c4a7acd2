/**
 * `tidegate policy explain --from CALLER --stdio SERVER` (docs/policy.md, "tidegate policy
 * explain"): what `tidegate run --mcp-stdio` does when a process of CALLER starts a server
 * workload of SERVER, read from the policy alone, in the agent's order (src/agent/enforcer.ts,
 * src/mcp/gate.ts):
 * 1. the first `stdio[]` rule whose `from` matches the caller and whose `server` matches the
 *    server decides (`run_mcp_no_rule` when none does: the server is never started); each rule
 *    tried says which side it failed;
 * 2. with --tool, --resource or --prompt, that rule's `mcp:` filter of that kind decides.
 */
import type { Policy, StdioRule } from "../policy/index.ts";
import { stdioRuleFor } from "../policy/stdio.ts";
import type { SpiffeId } from "../spiffe/index.ts";
import { mcpVerdict, type InboundAsk, type McpAnswer } from "./policy-inbound.ts";

export interface StdioExplanation extends McpAnswer {
  /** The rule that decides; null when none lets the caller use the server. */
  readonly rule: StdioRule | null;
  /** Each rule before it (all of them when none decides), with the side it failed. */
  readonly tried: readonly { readonly rule: StdioRule; readonly failed: readonly ("from" | "server")[] }[];
}

export function explainStdio(p: Policy, server: SpiffeId, ask: InboundAsk): StdioExplanation {
  const rule = stdioRuleFor(p, ask.from, server);
  const before = rule === null ? p.stdio : p.stdio.slice(0, p.stdio.indexOf(rule));
  const tried = before.map((r) => ({
    rule: r,
    failed: [...(r.from.some((x) => x.matcher.matches(ask.from)) ? [] : (["from"] as const)), ...(r.server.some((x) => x.matcher.matches(server)) ? [] : (["server"] as const))],
  }));
  if (rule === null) {
    const none = p.stdio.length === 0 ? "the policy has no stdio rules" : `no stdio rule lets ${ask.from.toString()} use ${server.toString()}`;
    return { rule: null, tried, verdict: "deny", reason: "run_mcp_no_rule", summary: `deny: ${none}, so tidegate run --mcp-stdio refuses to start the server`, mcp: null };
  }
  return { rule, tried, ...mcpVerdict(rule.mcp, ask, `allow: stdio rule ${rule.name} lets the caller use the server`, `stdio rule ${rule.name}`) };
}

export function renderStdio(e: StdioExplanation, from: SpiffeId, server: SpiffeId): string {
  const lines = [`decision   ${e.summary}`];
  if (e.rule !== null) lines.push(`rule       ${e.rule.name} (line ${e.rule.line}), stdio`);
  lines.push(`caller     ${from.toString()}`, `server     ${server.toString()}`);
  for (const t of e.tried) lines.push(`tried      ${t.rule.name} (line ${t.rule.line}): ${t.failed.map((f) => `${f} does not match`).join(", ")}`);
  lines.push("");
  return lines.join("\n");
}
