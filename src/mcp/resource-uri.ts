/**
 * A resource URI as `mcp.resources` patterns are matched against it (issue 10; RFC 3986): so that
 * `file:///shared/../etc/shadow` or `file:///shared/%73ecret` cannot pass for what it is not.
 *
 * Returned: the scheme lowercased; the path percent-decoded (so a pattern is written decoded).
 * Refused (null), rather than guessed: no scheme; a control character, a space or a backslash; bad
 * percent-encoding; an encoded `/`, `\`, `%` or NUL; in a hierarchical URI (`scheme://`), a `.` or
 * `..` segment or an empty one (`//`) in the path. The query and fragment are kept as sent, and
 * matching is case-sensitive.
 */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const FORBIDDEN = /[\u0000-\u0020\u007f\\]/;
const ENCODED_FORBIDDEN = /%(2f|5c|25|00)/i;

function decode(text: string): string | null {
  if (ENCODED_FORBIDDEN.test(text)) return null;
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}

export function normalizeResourceUri(uri: string): string | null {
  const m = SCHEME.exec(uri);
  if (m === null || FORBIDDEN.test(uri)) return null;
  const scheme = m[1]!.toLowerCase();
  let rest = uri.slice(m[0].length);
  const cut = rest.search(/[?#]/);
  const tail = cut < 0 ? "" : rest.slice(cut);
  rest = cut < 0 ? rest : rest.slice(0, cut);
  if (!rest.startsWith("//")) {
    const opaque = decode(rest);
    return opaque === null ? null : `${scheme}:${opaque}${tail}`;
  }
  const slash = rest.indexOf("/", 2);
  const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  const segments = path.split("/").slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = decode(segments[i]!);
    if (s === null || s === "." || s === ".." || (s === "" && i < segments.length - 1)) return null;
    segments[i] = s;
  }
  const auth = decode(authority);
  if (auth === null) return null;
  return `${scheme}://${auth.toLowerCase()}${path === "" ? "" : `/${segments.join("/")}`}${tail}`;
}
