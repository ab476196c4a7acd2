/**
 * Per-tool allow and deny (issue 10, `mcp.tools`). Combining rule: a tool is allowed when `allow`
 * is null or one of its patterns matches, and no `deny` pattern matches; a name matched by both
 * is denied. A pattern is a glob: `*` matches any run of characters (empty included), `?`
 * exactly one, every other character itself; a pattern without either is an exact match.
 */
import { mcpError } from "./errors.ts";
import { isJsonObject } from "./json.ts";

export interface ToolFilter {
  readonly allow: ReadonlySet<string> | null;
  readonly deny: ReadonlySet<string>;
}

export type ToolDecision = "allowed" | "denied" | "not_allowed";

function globRegExp(pattern: string): RegExp {
  const body = Array.from(pattern, (c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.|+()[\]{}\/]/g, "\\$&"))).join("");
  return new RegExp(`^${body}$`, "su");
}

function matcher(patterns: ReadonlySet<string>): (name: string) => boolean {
  const exact = new Set<string>();
  const globs: RegExp[] = [];
  for (const p of patterns) if (p.includes("*") || p.includes("?")) globs.push(globRegExp(p));
  else exact.add(p);
  return (name) => exact.has(name) || globs.some((g) => g.test(name));
}

/** The filter compiled once: tool name to decision. */
export function toolDecider(filter: ToolFilter): (name: string) => ToolDecision {
  const denied = matcher(filter.deny);
  const allowed = filter.allow === null ? () => true : matcher(filter.allow);
  return (name) => (denied(name) ? "denied" : allowed(name) ? "allowed" : "not_allowed");
}

export function decideTool(filter: ToolFilter, name: string): ToolDecision {
  return toolDecider(filter)(name);
}

/**
 * A copy of a tools/list `result` without the tools `visible` refuses, and without entries that
 * have no string name (they cannot be decided); every other member (nextCursor, _meta) is kept.
 * The input is not changed. A result without a `tools` array is refused (mcp_invalid_result).
 */
export function filterToolsList(result: unknown, visible: (name: string) => boolean): Readonly<Record<string, unknown>> {
  if (!isJsonObject(result) || !Array.isArray(result.tools)) throw mcpError("mcp_invalid_result", "a tools/list result without a tools array");
  const tools = (result.tools as readonly unknown[]).filter((t) => isJsonObject(t) && typeof t.name === "string" && visible(t.name));
  return Object.freeze({ ...result, tools: Object.freeze(tools) });
}
