/**
 * A resource URI as `mcp.resources` patterns are matched against it (issue 10; RFC 3986): so that
 * `file:///shared/../etc/shadow` or `file:///shared/%73ecret` cannot pass for what it is not.
 *
 * Returned: the scheme lowercased; the path percent-decoded (so a pattern is written decoded); as a
 * WHATWG URL parser (a server's `new URL`) reads them, a special scheme's default port dropped
 * (`https://h:443/x` is `https://h/x`) and file's host localhost (`file://localhost/x` is
 * `file:///x`). Refused (null), rather than guessed: no scheme; a control character, a space or a
 * backslash; bad percent-encoding; an encoded `/`, `\`, `%` or NUL; in a hierarchical URI
 * (`scheme://`) or a path from "/" (`foo:/a`, which that parser resolves too), a `.` or `..`
 * segment or an empty one (`//`) in the path; a special scheme (file, http, https, ws, wss, ftp)
 * without `//` (`file:/etc/x` is `file:///etc/x` to that parser); userinfo (`https://u@host`); a
 * file URI with a query or fragment (`file:///a/x?/../../etc/shadow`: a server that takes the text
 * after `file://` for a path resolves it to /etc/shadow). Other URIs' query and fragment are kept
 * as sent, and matching is case-sensitive.
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

/** The WHATWG URL standard's special schemes, with their default ports: a parser reads `file:/x` and `http:x` as `file:///x` and `http://x`. */
const SPECIAL: ReadonlyMap<string, string | null> = new Map([
  ["file", null],
  ["http", "80"],
  ["https", "443"],
  ["ws", "80"],
  ["wss", "443"],
  ["ftp", "21"],
]);

/** `path` ("/a/b") decoded segment by segment; null for a dot segment, an empty one but the last, or bad encoding. */
function decodedPath(path: string): string | null {
  const segments = path.split("/").slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = decode(segments[i]!);
    if (s === null || s === "." || s === ".." || (s === "" && i < segments.length - 1)) return null;
    segments[i] = s;
  }
  return `/${segments.join("/")}`;
}

export function normalizeResourceUri(uri: string): string | null {
  const m = SCHEME.exec(uri);
  if (m === null || FORBIDDEN.test(uri)) return null;
  const scheme = m[1]!.toLowerCase();
  let rest = uri.slice(m[0].length);
  const cut = rest.search(/[?#]/);
  const tail = cut < 0 ? "" : rest.slice(cut);
  rest = cut < 0 ? rest : rest.slice(0, cut);
  // A file URI has no use for a query or fragment, and a server taking the text after file:// for a path reads `?/../..` in one.
  if (scheme === "file" && tail !== "") return null;
  if (!rest.startsWith("//")) {
    // A special scheme without `//` is read with one; a path from "/" has its dot segments resolved.
    if (SPECIAL.has(scheme)) return null;
    const opaque = rest.startsWith("/") ? decodedPath(rest) : decode(rest);
    return opaque === null ? null : `${scheme}:${opaque}${tail}`;
  }
  const slash = rest.indexOf("/", 2);
  const authority = slash < 0 ? rest.slice(2) : rest.slice(2, slash);
  const path = slash < 0 ? "" : decodedPath(rest.slice(slash));
  if (path === null) return null;
  const decoded = decode(authority);
  // Userinfo is refused (`https://user@host` is host); a special scheme's default port dropped,
  // and file's host localhost, as a WHATWG parser does.
  if (decoded === null || decoded.includes("@")) return null;
  let auth = decoded.toLowerCase();
  const port = SPECIAL.get(scheme);
  if (port !== undefined && port !== null && auth.endsWith(`:${port}`)) auth = auth.slice(0, -port.length - 1);
  if (scheme === "file" && auth === "localhost") auth = "";
  return `${scheme}://${auth}${path}${tail}`;
}
