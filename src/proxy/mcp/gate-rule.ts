/** The MCP gate (src/mcp/gate.ts) of one conversation under a policy rule with `mcp:`, as every carrier makes it. */
import { McpGate, type GateRule, type PinStore, type SessionLists } from "../../mcp/index.ts";
import type { McpRules, ToolFilter } from "../../policy/model.ts";
import type { Audit } from "../../audit/sink/audit-log.ts";
import { sha256Sync } from "./sha256.ts";

type RuleLike = { readonly name: string; readonly mcp: McpRules | null };

/** A filter as text: equal texts filter alike (the gate's `lists`, so a reload that keeps a filter is no change). */
function filterText(f: ToolFilter | null | undefined): string {
  if (f == null) return "all";
  return JSON.stringify([f.allow === null ? null : [...f.allow].sort(), [...f.deny].sort()]);
}

export function gateRule(rule: RuleLike): GateRule {
  const m = rule.mcp;
  return {
    name: rule.name,
    tools: m?.tools?.decide ?? null,
    resources: m?.resources?.decide ?? null,
    prompts: m?.prompts?.decide ?? null,
    lists: { tool: filterText(m?.tools), resource: filterText(m?.resources), prompt: filterText(m?.prompts) },
  };
}

/** A rule under which the conversation takes no more requests (gate.ts, `closed`): `reason` for the audit and the answer, `message` for the client. */
export function closedRule(name: string, reason: string, message: string): GateRule {
  return { name, tools: null, closed: { reason, message } };
}

/**
 * The gate's rule as a function of what is in force now (`current`: a rule, the policy), so a
 * reload applies to a conversation's next message; `derive` runs again only when `current`
 * returns another object (a reload makes new ones).
 */
export function following<K extends object>(current: () => K, derive: (k: K) => GateRule): () => GateRule {
  let seen: K | null = null;
  let rule: GateRule | null = null;
  return () => {
    const k = current();
    if (k !== seen || rule === null) {
      seen = k;
      rule = derive(k);
    }
    return rule;
  };
}

/** How a gate's carrier tells the client of list changes (gate.ts `announcesLists`, `sessions`). */
export interface GateCarrier {
  /** The carrier tells the client of list changes. */
  readonly announcesLists?: boolean;
  /** An HTTP carrier's records of its sessions' lists, shared by its gates (lists-seen.ts). */
  readonly sessions?: SessionLists;
}

/**
 * A gate for `caller` talking to `server` (the pin key) under `rule` (fixed, or asked at each
 * message), auditing to `audit`, pinning in `pins` (none: no pinning), for a carrier that tells the
 * client of list changes as `carrier` says (default: it does not).
 */
export function openGate(rule: RuleLike | (() => GateRule), who: { caller: string; server: string; connId: string | null }, audit: Pick<Audit, "emit">, pins: PinStore | null, carrier: GateCarrier = {}): McpGate {
  return new McpGate({ ...who, rule: typeof rule === "function" ? rule : gateRule(rule) }, { pins, audit: (type, fields) => audit.emit(type, fields), now: () => performance.now(), sha256: sha256Sync, announcesLists: carrier.announcesLists === true, ...(carrier.sessions !== undefined ? { sessions: carrier.sessions } : {}) });
}
