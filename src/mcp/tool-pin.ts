/**
 * The pin of a tool definition (issue 10, "Tool pinning"): SHA-256 hex of the canonical JSON of
 * `{name, description, inputSchema}` plus what a client acts on: `title`, `annotations`
 * (readOnlyHint, destructiveHint: clients auto-approve on them), `outputSchema` and `execution`;
 * a missing member counts as null. Key order and whitespace do not change it; any change of those
 * members does. `_meta` and unknown members are not pinned. A tool that is not an object with a
 * string name is refused (mcp_invalid_result).
 */
import { mcpError } from "./errors.ts";
import { canonicalJson, isJsonObject, sha256Hex } from "./json.ts";

/** The members pinned, in the order they are shown; the canonical JSON sorts them anyway. */
export const PINNED_MEMBERS = ["name", "title", "description", "inputSchema", "outputSchema", "annotations", "execution"] as const;

/** The canonical JSON of what is pinned of `tool`: the text its pin is the SHA-256 of. */
export function toolDefinitionText(tool: unknown): string {
  if (!isJsonObject(tool) || typeof tool.name !== "string") throw mcpError("mcp_invalid_result", "a tool definition without a string name");
  const pinned: Record<string, unknown> = {};
  for (const m of PINNED_MEMBERS) pinned[m] = tool[m] ?? null;
  return canonicalJson(pinned);
}

export async function toolDefinitionHash(tool: unknown): Promise<string> {
  return sha256Hex(toolDefinitionText(tool));
}
