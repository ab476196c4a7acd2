/**
 * The SERVER of `tidegate mcp pin` (docs/mcp.md, "Tool pinning"), checked before anything is
 * written: pins under a name no gate uses are never consulted, so a typo would leave the server
 * meant on trust on first sight without a word.
 *
 * - A name of neither form a gate pins under (a SPIFFE ID, or an intercept rule's name:
 *   src/policy/mcp-servers.ts) is a usage error, with the nearest names the config's rules use.
 * - A well-formed name that no rule of the policy reads MCP from is pinned all the same (pinning
 *   before the rule is added is the careful order: the server is then never trusted on first
 *   sight), with a warning on stderr naming the rules' servers it may have meant; so is an ID
 *   only a stdio pattern's wildcard reads when it is near a name the policy has. The policy is
 *   the running agent's (its answer says), else the one in --config; one that cannot be read is
 *   said so, and nothing is checked.
 */
import { existsSync } from "node:fs";
import { loadPolicy, mcpServerNames, mcpServerNaming, parseMcpServerName, PolicyError, type McpServerName, type Policy } from "../policy/index.ts";
import { didYouMean, nearest } from "../policy/nearest.ts";
import type { Context } from "./command.ts";
import { readInputFile } from "./files.ts";
import { UsageError } from "./usage-error.ts";

/** What a policy says of a server name (src/policy/mcp-servers.ts `mcpServerNaming`). */
export interface ServerNaming {
  /** Where the policy came from, for the warning ("the running agent's policy", "CONFIG"). */
  readonly source: string;
  /** The rules that read MCP from it. */
  readonly readBy: readonly string[];
  /** Every server name the policy's rules use. */
  readonly servers: readonly string[];
  /** The names it was probably meant as. */
  readonly meant: readonly string[];
}

/** The config's policy, or why there is none to check against. */
export function configPolicy(ctx: Context): { policy: Policy } | { why: string } {
  const file = ctx.places.config;
  if (!existsSync(file)) return { why: `${file} does not exist` };
  try {
    return { policy: loadPolicy(new TextDecoder().decode(readInputFile(file, "--config")), file) };
  } catch (e) {
    return { why: e instanceof Error ? e.message : String(e) };
  }
}

/** `server` as a pin name; a usage error (exit 2) naming it, with the config's nearest server names, otherwise. */
export function pinServerName(ctx: Context, server: string): McpServerName {
  try {
    return parseMcpServerName(server);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    const p = configPolicy(ctx);
    const near = "policy" in p ? nearest(server, mcpServerNames(p.policy)) : [];
    throw new UsageError(`SERVER: ${e.message.replace(/^policy: /, "")}${didYouMean(near)}`);
  }
}

/** What the config's policy says of `name`, or null (with the reason) when it cannot be read. */
export function namingFromConfig(ctx: Context, name: McpServerName): ServerNaming | { why: string } {
  const p = configPolicy(ctx);
  if (!("policy" in p)) return p;
  return { source: ctx.places.config, ...mcpServerNaming(p.policy, name) };
}

/** The warning for a pin under `server`, or null when a rule reads MCP from it. */
export function unnamedWarning(verb: string, server: string, naming: ServerNaming | { why: string }): string | null {
  if (!("source" in naming)) return `tidegate ${verb}: warning: cannot check ${server} against a policy (${naming.why}): if no rule reads MCP from it, these pins are never used\n`;
  if (naming.readBy.length > 0) {
    if (naming.meant.length === 0) return null;
    return `tidegate ${verb}: warning: only the wildcard of ${naming.readBy.join(", ")} reads MCP from ${server}, an ID none of its rules or workloads names${didYouMean(naming.meant)}\n`;
  }
  const known = naming.servers.length === 0 ? "its rules read MCP from no server" : `its MCP servers: ${naming.servers.slice(0, 8).join(", ")}${naming.servers.length > 8 ? ", ..." : ""}`;
  return `tidegate ${verb}: warning: no rule of ${naming.source} reads MCP from ${server}, so these pins are not used until one does${naming.meant.length > 0 ? didYouMean(naming.meant) : ` (${known})`}\n`;
}
