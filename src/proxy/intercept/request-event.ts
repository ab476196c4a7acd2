/**
 * The `http_request` audit event of one intercepted request (docs/audit.md), from the exchange's
 * fields: the path never with its query or fragment (either may carry a credential), the secrets
 * injected by name only, optional texts left out when empty (a line the schema refuses would stop
 * `audit verify` there).
 */
import type { RequestHead } from "../../http1/index.ts";
import { optional } from "../conn-audit.ts";

type Fields = Record<string, unknown>;

export function requestEvent(base: Readonly<Fields>, head: RequestHead | null, started: number, fields: Readonly<Fields>): Fields {
  const path = fields.path as string | undefined;
  const host = fields.host as string | null | undefined;
  // one object, built in the line's order, without a rest copy of `fields`: one per request
  const out: Fields = {
    ...base,
    method: head?.method ?? null,
    target: path ?? (head === null ? null : pathOf(head.target)),
    host: host ?? head?.host?.name ?? null,
    status: fields.status ?? null,
    rule: fields.rule ?? null,
  };
  for (const k in fields) {
    if (k === "path" || k === "secrets" || k === "host" || k === "rule" || k === "status") continue;
    const v = optional(fields[k]);
    if (v !== undefined) out[k] = v;
  }
  const injected = fields.secrets as readonly string[] | undefined;
  if (injected !== undefined && injected.length > 0) out.injected = injected;
  out.duration_ms = Math.round(performance.now() - started);
  return out;
}

/** The path of a request-target without its query or fragment, or null when it has none. */
export function pathOf(target: string): string | null {
  let path = target;
  if (!target.startsWith("/")) {
    try {
      path = new URL(target).pathname;
    } catch {
      return null;
    }
  }
  return path.split(/[?#]/, 1)[0] || null;
}

/** "http://host/p?q" as "/p?q": what an origin server expects. */
export function originForm(target: string): string {
  const u = new URL(target);
  return `${u.pathname}${u.search}`;
}
