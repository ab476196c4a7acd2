/**
 * Matchers: which SPIFFE IDs a policy rule accepts.
 *
 * A Matcher is a small immutable value: `matches(id)` says whether the rule accepts `id`, and
 * `toString()` gives it back as text for logs and policy dumps (a pattern's own text; "*" for
 * `matchAny`; "spiffe://<td>/**" for `matchMemberOf`, which is the same set).
 *
 * Pattern syntax (`parsePattern`), for policy files:
 * - `spiffe://<trust domain>/<segment>/...`, checked like a SPIFFE ID with the same codes; the
 *   trust domain is exact (no wildcards in it).
 * - a segment `*` matches exactly one whole segment (never zero, never part of one);
 * - a segment `**`, allowed only as the last, matches the rest: zero or more segments. So
 *   "spiffe://example.org/agent/**" matches "spiffe://example.org/agent" itself and everything
 *   below it, and "spiffe://example.org/**" matches every ID in the trust domain including the
 *   trust domain's own ID.
 * - `*` mixed with other characters ("a*b", "***") or `**` before the last segment is
 *   `spiffeid_bad_pattern`.
 * - without wildcards a pattern matches exactly one ID (equal trust domain and path; paths are
 *   case-sensitive).
 */
import { quote } from "./errors.ts";
import { walkPath, walkPrefix } from "./charset.ts";
import { SpiffeId } from "./id.ts";
import type { TrustDomain } from "./trust-domain.ts";

export interface Matcher {
  matches(id: SpiffeId): boolean;
  toString(): string;
}

function matcher(text: string, matches: (id: SpiffeId) => boolean): Matcher {
  return Object.freeze({ matches, toString: () => text });
}

export function matchAny(): Matcher {
  return matcher("*", () => true);
}

export function matchId(expected: SpiffeId): Matcher {
  return matcher(expected.toString(), (id) => id.equals(expected));
}

/** Matches any of `ids`; with none it matches nothing (fails closed). */
export function matchOneOf(...ids: SpiffeId[]): Matcher {
  const set = new Set(ids.map((id) => id.toString()));
  return matcher(`[${[...set].join(", ")}]`, (id) => set.has(id.toString()));
}

/** Matches every ID in `td`, including the trust domain's own ID. */
export function matchMemberOf(td: TrustDomain): Matcher {
  return matcher(`${td.idString()}/**`, (id) => id.memberOf(td));
}

/** Throws SpiffeIdError: the ID codes, plus `spiffeid_bad_pattern` for a misused wildcard. */
export function parsePattern(text: string): Matcher {
  const subject = `pattern ${quote(text)}`;
  const { trustDomain, pathStart } = walkPrefix(subject, text, "pattern");
  walkPath(subject, text, pathStart, true);
  if (!text.includes("*", pathStart)) return matchId(SpiffeId.parse(text));

  const segments = text.slice(pathStart + 1).split("/");
  const rest = segments[segments.length - 1] === "**";
  const fixed = rest ? segments.slice(0, -1) : segments;
  return matcher(text, (id) => {
    if (id.trustDomain.name !== trustDomain) return false;
    const got = id.path === "" ? [] : id.path.slice(1).split("/");
    if (rest ? got.length < fixed.length : got.length !== fixed.length) return false;
    return fixed.every((want, i) => want === "*" || want === got[i]);
  });
}
