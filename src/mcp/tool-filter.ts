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

/**
 * A glob's matcher (over the name's code points), without a regular expression: the name a peer sends (a resource URI, a listed
 * tool's or prompt's name) may be 4 MiB, and a backtracking regex of several `.*` takes a power
 * of that when it fails (`*_*_*_admin` against `a_a_a…`), on the agent's one thread. The pattern's
 * pieces between `*`s are matched in order, each at its leftmost place (which is always as good
 * as any later one), so the time is the name's length times a piece's. Characters are code
 * points, so `?` is one of them.
 */
function globMatcher(pattern: string): (name: readonly string[]) => boolean {
  const pieces = pattern.split("*").map((p) => Array.from(p));
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const at = (name: readonly string[], piece: readonly string[], i: number): boolean => {
    for (let j = 0; j < piece.length; j++) if (piece[j] !== "?" && piece[j] !== name[i + j]) return false;
    return true;
  };
  return (name) => {
    if (pieces.length === 1) return name.length === first.length && at(name, first, 0);
    if (name.length < first.length + last.length || !at(name, first, 0) || !at(name, last, name.length - last.length)) return false;
    let i = first.length;
    const end = name.length - last.length;
    for (let k = 1; k < pieces.length - 1; k++) {
      const piece = pieces[k]!;
      while (i + piece.length <= end && !at(name, piece, i)) i++;
      if (i + piece.length > end) return false;
      i += piece.length;
    }
    return true;
  };
}

function matcher(patterns: ReadonlySet<string>): (name: string) => boolean {
  const exact = new Set<string>();
  const globs: ((name: readonly string[]) => boolean)[] = [];
  for (const p of patterns) if (p.includes("*") || p.includes("?")) globs.push(globMatcher(p));
  else exact.add(p);
  return (name) => {
    if (exact.has(name)) return true;
    if (globs.length === 0) return false;
    const points = Array.from(name);
    return globs.some((g) => g(points));
  };
}

/** The filter compiled once: tool name to decision. */
export function toolDecider(filter: ToolFilter): (name: string) => ToolDecision {
  const denied = matcher(filter.deny);
  const allowed = filter.allow === null ? () => true : matcher(filter.allow);
  return (name) => (denied(name) ? "denied" : allowed(name) ? "allowed" : "not_allowed");
}
