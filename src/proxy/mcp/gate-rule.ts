/** What the MCP gate (src/mcp/gate.ts) reads of a policy rule with `mcp:`. */
import type { GateRule } from "../../mcp/index.ts";
import type { EgressRule, InboundRule } from "../../policy/model.ts";

export function gateRule(rule: EgressRule | InboundRule): GateRule {
  const m = rule.mcp;
  return { name: rule.name, tools: m?.tools?.decide ?? null, resources: m?.resources?.decide ?? null, prompts: m?.prompts?.decide ?? null };
}
