/**
 * The pin of a tool definition (issue 10, "Tool pinning"): SHA-256 hex of the canonical JSON of
 * `{name, description, inputSchema}`, a missing description or inputSchema counting as null.
 * Key order and whitespace do not change it; any change of those three members does. Other
 * members (annotations, title, _meta) are not pinned. A tool that is not an object with a string
 * name is refused (mcp_invalid_result).
 */
import { mcpError } from "./errors.ts";
import { canonicalJson, isJsonObject, sha256Hex } from "./json.ts";

export async function toolDefinitionHash(tool: unknown): Promise<string> {
  if (!isJsonObject(tool) || typeof tool.name !== "string") throw mcpError("mcp_invalid_result", "a tool definition without a string name");
  const pinned = { name: tool.name, description: tool.description ?? null, inputSchema: tool.inputSchema ?? null };
  return sha256Hex(canonicalJson(pinned));
}
