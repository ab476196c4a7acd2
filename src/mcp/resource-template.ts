/**
 * A resource template (MCP 2025-11-25 "Resources", Resource Templates: `uriTemplate`, an RFC 6570
 * URI template) as `mcp.resources` patterns decide it in a `resources/templates/list` result
 * (gate.ts): its text with each expression `{...}` replaced by `*`, then normalized as a resource
 * URI is (resource-uri.ts). So `file:///shared/{name}` is decided as `file:///shared/*`, which the
 * glob `file:///shared/*` matches and `file:///shared/a*` or `file:///other/*` do not; a `deny`
 * pattern hides the template when it matches that text (`file:///shared/*` does,
 * `file:///shared/secret*` does not).
 *
 * Refused (null), so the template is hidden: an empty expression `{}`; a brace outside a pair (an
 * unclosed `{`, a lone `}`, a `{` inside an expression); a text that does not normalize (no
 * scheme, an expression in the scheme, dot or empty segments, encoded slashes, spaces or controls).
 *
 * This decides only whether the template is shown. A URI the client makes from it is decided on
 * its own when it is read (gate.ts `fromClient`), so a template listed never lets through a URI
 * the rule refuses, and one hidden can still be used only for URIs the rule allows.
 */
import { normalizeResourceUri } from "./resource-uri.ts";

/** An RFC 6570 expression: braces around a non-empty run without braces (section 2.2). */
const EXPRESSION = /\{[^{}]+\}/g;

/** The text `mcp.resources` decides `template` as, or null when it cannot be decided. */
export function normalizeResourceTemplate(template: string): string | null {
  const text = template.replace(EXPRESSION, "*");
  if (text.includes("{") || text.includes("}")) return null;
  return normalizeResourceUri(text);
}
