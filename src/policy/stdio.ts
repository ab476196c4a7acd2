/**
 * Which `stdio[]` rule governs a stdio MCP server (`tidegate run --mcp-stdio`; docs/mcp.md): the
 * first, in file order, whose `from` matches the launching client's identity and whose `server`
 * matches the server workload's. None: the server is not started (fail closed).
 */
import type { SpiffeId } from "../spiffe/id.ts";
import type { Policy, StdioRule } from "./model.ts";

export function stdioRuleFor(policy: Pick<Policy, "stdio">, caller: SpiffeId, server: SpiffeId): StdioRule | null {
  return policy.stdio.find((r) => r.from.some((p) => p.matcher.matches(caller)) && r.server.some((p) => p.matcher.matches(server))) ?? null;
}
