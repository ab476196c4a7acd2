/**
 * What `tidegate mcp tools` prints (docs/mcp.md, "Tool pinning"): the pins of a server, a tool a
 * line, and one tool's pinned and waiting definitions with what changed between them, member by
 * member, so that an admin reads a change before approving it.
 *
 * Everything shown here came from an MCP server, which tidegate does not trust: names and
 * definitions are printed as JSON with every character from DEL up escaped (`\uXXXX`), so no
 * terminal control sequence, bidirectional override, invisible or look-alike character reaches
 * the screen as itself. A name of letters, digits and `_ - .` alone is printed bare.
 */
import type { ServerPins } from "../mcp/index.ts";
import { PINNED_MEMBERS } from "../mcp/index.ts";

/** One hash of a tool and, when the agent was shown it, the pinned members of its definition. */
export interface ShownDefinition {
  readonly hash: string;
  readonly definition: Record<string, unknown> | null;
}

export interface ShownTool {
  readonly pinned: ShownDefinition | null;
  readonly waiting: ShownDefinition | null;
}

const escapeWide = (json: string) => json.replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** `value` as JSON, indented, printable ASCII only. */
export function safeJson(value: unknown, indent = 2): string {
  return escapeWide(JSON.stringify(value, null, indent) ?? "null");
}

/** A name as is when it is plain, else quoted and escaped. */
export function safeName(name: string): string {
  return /^[A-Za-z0-9_.:/-]{1,256}$/.test(name) ? name : safeJson(name, 0);
}

/** One server's pins, a tool a line, the names padded to one column. */
export function renderPins(server: string, p: ServerPins): string {
  const lines = [`${safeName(server)}${p.strict ? " (from an approved file: unnamed tools wait)" : ""}`];
  const tools = [...new Set([...Object.keys(p.pinned), ...Object.keys(p.waiting)])].sort();
  const names = tools.map(safeName);
  const width = Math.max(0, ...names.map((t) => t.length));
  tools.forEach((t, i) => {
    const pinned = p.pinned[t];
    const waiting = p.waiting[t];
    const name = names[i]!.padEnd(width);
    if (waiting === undefined) lines.push(`  ${name}  pinned  ${pinned}`);
    else lines.push(`  ${name}  WAITING for approval: ${pinned === undefined ? "not pinned" : `pinned ${pinned}`}, now ${waiting}`);
  });
  if (tools.length === 0) lines.push("  no tools seen yet");
  else if (Object.keys(p.waiting).length > 0) lines.push(`  read a change before approving it: tidegate mcp tools ${safeName(server)} TOOL`);
  return lines.join("\n") + "\n";
}

const indented = (text: string, prefix: string) => text.split("\n").map((l) => prefix + l).join("\n");

/** Why a definition is not shown: the agent was not shown it (or could not keep it). */
function unknown(which: string, agent: boolean): string {
  const why = "the agent has not been shown it since it began to keep definitions, or it is too large to keep";
  return `  the ${which} definition is known by its hash alone: ${why}; it shows here once a client lists the server's tools through tidegate${agent ? "" : " (no agent runs: read from its files)"}`;
}

/** One tool: its hashes, then the pinned definition, or what changed in the waiting one. `agent`: asked of a running agent. */
export function renderTool(server: string, tool: string, t: ShownTool, agent: boolean): string {
  const out = [`${safeName(server)}  ${safeName(tool)}`];
  if (t.pinned !== null) out.push(`  pinned   ${t.pinned.hash}`);
  else out.push("  pinned   nothing (the server's pins came from an approved file that does not name it)");
  if (t.waiting !== null) out.push(`  WAITING  ${t.waiting.hash}: hidden from tools/list and refused until approved`);
  out.push("");
  const p = t.pinned?.definition ?? null;
  if (t.waiting === null) {
    if (p === null) out.push(unknown("pinned", agent));
    else {
      out.push("pinned definition:");
      for (const m of PINNED_MEMBERS) if (p[m] !== null && p[m] !== undefined) out.push(`  ${m}`, indented(safeJson(p[m]), "    "));
    }
    return out.join("\n") + "\n";
  }
  const w = t.waiting.definition;
  if (w === null) out.push(unknown("waiting", agent));
  else if (t.pinned !== null && p === null) {
    out.push(unknown("pinned", agent), "", "waiting definition:");
    for (const m of PINNED_MEMBERS) if (w[m] !== null && w[m] !== undefined) out.push(`  ${m}`, indented(safeJson(w[m]), "    "));
  } else {
    const was = p ?? {};
    const changed = PINNED_MEMBERS.filter((m) => safeJson(was[m] ?? null) !== safeJson(w[m] ?? null));
    const same = PINNED_MEMBERS.filter((m) => !changed.includes(m) && (w[m] ?? null) !== null);
    out.push(t.pinned === null ? "waiting definition (- nothing pinned, + waiting):" : "what changed (- pinned, + waiting):");
    for (const m of changed) {
      out.push(`  ${m}`);
      if (t.pinned !== null) out.push(indented(safeJson(was[m] ?? null), "    - "));
      out.push(indented(safeJson(w[m] ?? null), "    + "));
    }
    if (same.length > 0) out.push(`  unchanged: ${same.join(", ")}`);
  }
  out.push("", `approve this definition: tidegate mcp approve ${safeName(server)} ${safeName(tool)} --hash ${t.waiting.hash}`);
  return out.join("\n") + "\n";
}
