/**
 * What policy and audit need from a request or notification (DESIGN.md section 6; MCP
 * 2025-11-25 "Server Features"). Decided on the parsed body alone, never on HTTP headers.
 *
 * Rejected with mcp_invalid_params (JSON-RPC -32602): a tools/call whose params.name is missing
 * or not a tool name as the policy writes them (1-128 of letters, digits, '_', '-', '.'), or
 * whose arguments are present but not an object; a resources/read without a string uri; a
 * prompts/get without a string name; a completion/complete whose ref is not a ref/prompt with a
 * string name or a ref/resource with a string uri. Anything else is classified, never refused here.
 */
import { mcpError } from "./errors.ts";
import { canonicalJson, isJsonObject, sha256Hex } from "./json.ts";
import type { McpNotification, McpRequest } from "./message.ts";

/** The policy's tool name syntax (src/policy/schema.ts). */
export const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

export type Classification =
  | { readonly kind: "tool_call"; readonly tool: string; readonly argsSha256: string }
  | { readonly kind: "resource_read"; readonly uri: string }
  | { readonly kind: "prompt_get"; readonly name: string }
  /** completion/complete: the prompt (name) or resource (URI or URI template) whose completer it runs. */
  | { readonly kind: "completion"; readonly of: "prompt" | "resource"; readonly target: string }
  | { readonly kind: "tools_list" }
  | { readonly kind: "resources_list" }
  | { readonly kind: "prompts_list" }
  | { readonly kind: "initialize" }
  | { readonly kind: "notification"; readonly method: string }
  | { readonly kind: "other"; readonly method: string };

const LISTS: ReadonlyMap<string, Classification> = new Map<string, Classification>([
  ["tools/list", Object.freeze({ kind: "tools_list" })],
  ["resources/list", Object.freeze({ kind: "resources_list" })],
  ["prompts/list", Object.freeze({ kind: "prompts_list" })],
  ["initialize", Object.freeze({ kind: "initialize" })],
]);

/** Classifies `m`; a tool call's arguments (absent: `{}`) are hashed as canonical JSON, with `hash` (SHA-256 hex; default WebCrypto's). */
export async function classify(m: McpRequest | McpNotification, hash: (text: string) => string | Promise<string> = sha256Hex): Promise<Classification> {
  if (m.kind === "notification") return Object.freeze({ kind: "notification", method: m.method });
  const id = m.id;
  const params = m.params ?? {};
  switch (m.method) {
    case "tools/call": {
      const name = params.name;
      if (typeof name !== "string") throw mcpError("mcp_invalid_params", "a tools/call without a string params.name", id);
      if (!TOOL_NAME.test(name)) throw mcpError("mcp_invalid_params", "a tools/call whose name is not 1-128 of letters, digits, '_', '-', '.'", id);
      const args = params.arguments ?? {};
      if (!isJsonObject(args)) throw mcpError("mcp_invalid_params", `tools/call ${name} with arguments that are not an object`, id);
      return Object.freeze({ kind: "tool_call", tool: name, argsSha256: await hash(canonicalJson(args)) });
    }
    case "resources/read":
      if (typeof params.uri !== "string") throw mcpError("mcp_invalid_params", "a resources/read without a string params.uri", id);
      return Object.freeze({ kind: "resource_read", uri: params.uri });
    case "prompts/get":
      if (typeof params.name !== "string") throw mcpError("mcp_invalid_params", "a prompts/get without a string params.name", id);
      return Object.freeze({ kind: "prompt_get", name: params.name });
    case "completion/complete": {
      const ref = params.ref;
      const bad = (why: string) => mcpError("mcp_invalid_params", `a completion/complete whose ref ${why}`, id);
      if (!isJsonObject(ref)) throw bad("is not an object");
      if (ref.type === "ref/prompt") {
        if (typeof ref.name !== "string") throw bad("names no prompt");
        return Object.freeze({ kind: "completion", of: "prompt", target: ref.name });
      }
      if (ref.type === "ref/resource") {
        if (typeof ref.uri !== "string") throw bad("names no resource");
        return Object.freeze({ kind: "completion", of: "resource", target: ref.uri });
      }
      throw bad("is neither ref/prompt nor ref/resource");
    }
    default:
      return LISTS.get(m.method) ?? Object.freeze({ kind: "other", method: m.method });
  }
}
