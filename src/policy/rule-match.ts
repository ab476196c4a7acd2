/**
 * One rule against one query, field by field (query.ts, rules 2 and 4). The engine uses the fast
 * paths; explain uses `failedFields` to say which fields a rule failed on.
 */
import type { SpiffeId } from "../spiffe/index.ts";
import { cidrContains } from "./address.ts";
import { hostMatches } from "./host-name.ts";
import { pathMatches } from "./http-match.ts";
import type { EgressRule, HttpMatch } from "./model.ts";
import type { HttpRequestInfo, Query } from "./query.ts";

export type Field = "from" | "to.host" | "to.cidr" | "to.port" | "to.proto" | "http.methods" | "http.paths";

export function fromMatches(r: EgressRule, id: SpiffeId): boolean {
  for (const p of r.from) if (p.matcher.matches(id)) return true;
  return false;
}

export function destinationMatches(r: EgressRule, q: Query): boolean {
  if (r.to.kind === "host") return q.name !== null && hostMatches(r.to.host, q.name);
  return q.address !== null && cidrContains(r.to.cidr, q.address);
}

/** Protocol, port and destination: what a rule needs before HTTP is seen. */
export function connectionMatches(r: EgressRule, q: Query): boolean {
  return r.proto === q.proto && q.port >= r.ports.lo && q.port <= r.ports.hi && destinationMatches(r, q);
}

export function methodMatches(m: HttpMatch, http: HttpRequestInfo): boolean {
  return m.methods === null || m.methods.includes(http.method);
}

export function pathMatchesAny(m: HttpMatch, http: HttpRequestInfo): boolean {
  if (m.paths === null) return true;
  for (const p of m.paths) if (pathMatches(p, http.path)) return true;
  return false;
}

export function httpMatches(m: HttpMatch, http: HttpRequestInfo): boolean {
  return methodMatches(m, http) && pathMatchesAny(m, http);
}

/** Every field of `r` that `q` fails; request fields only when the query carries a request. */
export function failedFields(r: EgressRule, q: Query): Field[] {
  const failed: Field[] = [];
  if (!fromMatches(r, q.from)) failed.push("from");
  if (!destinationMatches(r, q)) failed.push(r.to.kind === "host" ? "to.host" : "to.cidr");
  if (q.port < r.ports.lo || q.port > r.ports.hi) failed.push("to.port");
  if (r.proto !== q.proto) failed.push("to.proto");
  if (r.http !== null && q.http != null) {
    if (!methodMatches(r.http, q.http)) failed.push("http.methods");
    if (!pathMatchesAny(r.http, q.http)) failed.push("http.paths");
  }
  return failed;
}
