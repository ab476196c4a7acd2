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

export async function toolDefinitionHash(tool: unknown): Promise<string> {
  if (!isJsonObject(tool) || typeof tool.name !== "string") throw mcpError("mcp_invalid_result", "a tool definition without a string name");
  const pinned = {
    name: tool.name,
    description: tool.description ?? null,
    inputSchema: tool.inputSchema ?? null,
    title: tool.title ?? null,
    annotations: tool.annotations ?? null,
    outputSchema: tool.outputSchema ?? null,
    execution: tool.execution ?? null,
  };
  return sha256Hex(canonicalJson(pinned));
}
