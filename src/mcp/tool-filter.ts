/**
 * Per-tool allow and deny (issue 10, `mcp.tools`). Combining rule: a tool is allowed when `allow`
 * is null or one of its patterns matches, and no `deny` pattern matches; a name matched by both
 * is denied. A pattern is a glob: `*` matches any run of characters (empty included), `?`
 * exactly one, every other character itself; a pattern without either is an exact match.
 */

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
