/**
 * The names an MCP server's tool pins are kept under (docs/mcp.md, "Where it applies"), for
 * `tidegate mcp pin SERVER` and the agent's `POST /v1/mcp/pin`, which set a server's pins before
 * it is seen. A pin under a name no rule uses is never consulted, and the server meant stays on
 * trust on first sight, so the name is checked:
 *
 * - `parseMcpServerName`: a name of either form the gates use, or `policy_bad_mcp_server`:
 *   a SPIFFE ID (any text with ':' or '/', parsed as one, and written as the gates write it,
 *   SpiffeId.toString()), or a rule name (1-64 of letters, digits, '_', '.', '-', the policy's
 *   rule names): an intercept rule without `mtls.server_id` pins under its name.
 * - `rulesNamingMcpServer`: which rules of a policy would read MCP from the server so named:
 *   an `egress[]` rule with `action: intercept` and `mcp:`, by its `mtls.server_id` or, without
 *   one, by its name; an `inbound[]` rule with `mcp:`, by its `id`; a `stdio[]` rule whose
 *   `server` patterns match the ID.
 * - `mcpServerNames`: every name the policy's rules pin under that can be written out (a stdio
 *   pattern with a wildcard gives the IDs of the workloads it matches), for "did you mean".
 * - `mcpServerNaming`: both, and the names the server was probably meant as: an intercept rule's
 *   `mtls.server_id` when named by that rule's name, else the nearest of `mcpServerNames`; also
 *   for an ID that only a stdio pattern's wildcard reads and that is none of those names.
 *
 * Portable: no runtime imports.
 */
import { SpiffeId, SpiffeIdError } from "../spiffe/index.ts";
import { PolicyError } from "./errors.ts";
import { quote } from "../errors.ts";
import type { Policy } from "./model.ts";
import { nearest } from "./nearest.ts";
import { RULE_NAME } from "./names.ts";

export type McpServerName = { readonly kind: "id"; readonly id: SpiffeId; readonly text: string } | { readonly kind: "rule"; readonly text: string };

/** `text` as a pin key the gates can use; `policy_bad_mcp_server` naming it otherwise. */
export function parseMcpServerName(text: string): McpServerName {
  if (/[:/]/.test(text)) {
    let id: SpiffeId;
    try {
      id = SpiffeId.parse(text);
    } catch (e) {
      if (!(e instanceof SpiffeIdError)) throw e;
      throw new PolicyError("policy_bad_mcp_server", `policy: MCP server ${quote(text)} is not a SPIFFE ID: ${e.message}`, { cause: e });
    }
    if (id.toString() !== text) throw new PolicyError("policy_bad_mcp_server", `policy: MCP server ${quote(text)} is written ${id.toString()} by the gates`);
    return { kind: "id", id, text };
  }
  if (!RULE_NAME.test(text)) {
    throw new PolicyError("policy_bad_mcp_server", `policy: MCP server ${quote(text)} is neither a SPIFFE ID nor a rule name (1-64 of letters, digits, '_', '.', '-', starting with a letter or digit)`);
  }
  return { kind: "rule", text };
}

/** The rules of `policy` that read MCP from `server`, as "egress rule NAME" (and inbound, stdio). */
export function rulesNamingMcpServer(policy: Policy, server: McpServerName): string[] {
  const out: string[] = [];
  for (const r of policy.egress) {
    if (r.action !== "intercept" || r.mcp === null) continue;
    if (server.kind === "id" ? r.serverId !== null && r.serverId.equals(server.id) : r.serverId === null && r.name === server.text) out.push(`egress rule ${r.name}`);
  }
  if (server.kind === "rule") return out;
  for (const r of policy.inbound) if (r.mcp !== null && r.id.equals(server.id)) out.push(`inbound rule ${r.name}`);
  for (const r of policy.stdio) if (r.server.some((p) => p.matcher.matches(server.id))) out.push(`stdio rule ${r.name}`);
  return out;
}

/** Every pin key the rules of `policy` use that can be written out, once each, in file order. */
export function mcpServerNames(policy: Policy): string[] {
  const out = new Set<string>();
  for (const r of policy.egress) if (r.action === "intercept" && r.mcp !== null) out.add(r.serverId?.toString() ?? r.name);
  for (const r of policy.inbound) if (r.mcp !== null) out.add(r.id.toString());
  for (const r of policy.stdio) {
    for (const p of r.server) {
      if (!p.text.includes("*")) out.add(p.text);
      for (const w of policy.workloads) if (p.matcher.matches(w.id)) out.add(w.id.toString());
    }
  }
  return [...out];
}

/** What `policy` says of `server`: the rules that read MCP from it, every server name its rules use, and the ones it was probably meant as. */
export function mcpServerNaming(policy: Policy, server: McpServerName): { readBy: string[]; servers: string[]; meant: string[] } {
  const readBy = rulesNamingMcpServer(policy, server);
  const servers = mcpServerNames(policy);
  if (readBy.length > 0) {
    // Read only through a stdio pattern's wildcard, by an ID no workload of the policy has: a
    // typo of a known name still gets its "did you mean" (the pins are kept all the same).
    const exact = servers.includes(server.text) || readBy.some((r) => !r.startsWith("stdio rule "));
    return { readBy, servers, meant: exact ? [] : nearest(server.text, servers).filter((n) => n !== server.text) };
  }
  // an intercept rule with mtls.server_id pins under that ID, not under its name
  const byId = server.kind === "rule" ? policy.egress.filter((r) => r.action === "intercept" && r.mcp !== null && r.name === server.text && r.serverId !== null).map((r) => r.serverId!.toString()) : [];
  return { readBy, servers, meant: byId.length > 0 ? byId : nearest(server.text, servers) };
}
