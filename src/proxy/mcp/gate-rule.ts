/** The MCP gate (src/mcp/gate.ts) of one conversation under a policy rule with `mcp:`, as every carrier makes it. */
import { McpGate, type GateRule, type PinStore } from "../../mcp/index.ts";
import type { McpRules } from "../../policy/model.ts";
import type { Audit } from "../../audit/sink/audit-log.ts";
import { sha256Sync } from "./sha256.ts";

export function gateRule(rule: { readonly name: string; readonly mcp: McpRules | null }): GateRule {
  const m = rule.mcp;
  return { name: rule.name, tools: m?.tools?.decide ?? null, resources: m?.resources?.decide ?? null, prompts: m?.prompts?.decide ?? null };
}

/** A gate for `caller` talking to `server` (the pin key) under `rule`, auditing to `audit`, pinning in `pins` (none: no pinning). */
export function openGate(rule: { readonly name: string; readonly mcp: McpRules | null }, who: { caller: string; server: string; connId: string | null }, audit: Pick<Audit, "emit">, pins: PinStore | null): McpGate {
  return new McpGate({ ...who, rule: gateRule(rule) }, { pins, audit: (type, fields) => audit.emit(type, fields), now: () => performance.now(), sha256: sha256Sync });
}
