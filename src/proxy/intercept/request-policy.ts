/**
 * One intercepted HTTP request against the policy (docs/policy.md, rules 3 and 4; DESIGN.md
 * sections 5 and 7): what may go upstream, with which headers, or why not.
 *
 * Refusals, each with the status the workload gets and the reason logged:
 * - `no_host` (400): an HTTP/1.0 request without Host;
 * - `host_sni_mismatch` (421): the workload spoke TLS and the request's Host is not the name it
 *   gave in its ClientHello (a connection is decided, and its leaf minted, for that name);
 * - `host_port_mismatch` (421): the Host names a port other than the one the workload dialled
 *   (the policy decided that port; a router upstream that matches sites by host and port would
 *   send the request to another site, or its default);
 * - `host_address_mismatch` (421): the Host is an IP address other than the one the workload
 *   dialled. An address names nothing, so only `cidr` rules can match it, by the address dialled;
 *   a Host naming another address would have the upstream (a reverse proxy, say) route the
 *   request somewhere the policy did not judge;
 * - `bad_path` (400): the path does not normalize (http-match.ts);
 * - `bad_method` (400): the method has a lowercase letter. Methods are case-sensitive, and a
 *   rule's `http.methods` are uppercase, so no rule names it; but servers that upper-case the
 *   method (Django, Werkzeug) would take `delete` for the DELETE a deny rule refuses;
 * - `method_override`, `target_override` (400): a header some servers take as the real method
 *   (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, unless it names the request's own
 *   method) or path (X-Original-URL, X-Rewrite-URL): the upstream would run a request the policy
 *   did not decide;
 * - `upgrade_refused` (403): CONNECT; a request asking to switch to a protocol (its Upgrade list,
 *   by name, any version) that the matching rule's `upgrade:` does not name (only websocket can be
 *   named);
 * - the policy's deny reasons (403): `no_rule`, `rule`, `not_interceptable` (the rule that matched
 *   is not `intercept`: its bytes could not be passed on as sent), `address_not_resolved` (the Host
 *   does not resolve to the address the workload dialled: where bytes go), `dns_failed` (502);
 * - `placeholder_not_allowed` (403): a header carries `tidegate-placeholder:NAME` and the rule's
 *   `inject` does not name secret NAME: a placeholder is swapped only toward the destinations of the
 *   rules that inject that secret;
 * - `placeholder_header_not_allowed` (403): a header carries a placeholder for a secret the rule
 *   injects, and is not one of the rule's `inject.placeholder_headers` (by default Authorization,
 *   X-Api-Key, Api-Key: inject.ts DEFAULT_PLACEHOLDER_HEADERS), matched in any case. Else the
 *   workload would pick the header the secret goes in, and one the API echoes (X-Request-Id) would
 *   hand it the value;
 * - `secret_missing` (503): the rule injects a secret the store does not hold (or cannot read).
 * Headers: every header the rule injects is removed as the workload sent it, then set from its
 * template; placeholders are swapped in the listed headers the rule does not inject (each field
 * of a repeated one; anywhere in its value: `Bearer tidegate-placeholder:NAME`), never in the
 * target, the body or trailers (requestTrailers); an absolute-form request without Host
 * (HTTP/1.0) gets its target's authority as Host, as its target goes upstream in origin-form;
 * Host goes as the name decided (lowercase, no trailing dot); Content-Length and
 * Transfer-Encoding go as the parser read them, written one way. Messages
 * and logs name secrets, never their values.
 */
import { tryParseIp, type IpAddress } from "../../policy/address.ts";
import { admit, admitNow, type Admission, type Upstream } from "../../policy/destination.ts";
import type { Decision, Query } from "../../policy/query.ts";
import type { PolicyEngine } from "../../policy/engine.ts";
import { normalizeServerName } from "../../policy/host-name.ts";
import { normalizeRequestPath } from "../../policy/http-match.ts";
import { renderHeader } from "../../policy/inject.ts";
import type { EgressRule } from "../../policy/model.ts";
import type { NameCache } from "../../policy/name-cache.ts";
import type { SpiffeId } from "../../spiffe/id.ts";
import { quote, TidegateError } from "../../errors.ts";
import type { Header, HeaderList, RequestHead } from "../../http1/index.ts";

/**
 * Headers some servers take as the request's real method or path (Express's method-override,
 * Google's APIs; IIS and Symfony's X-Original-URL): a request decided as `POST /public` would run
 * as the DELETE or the path they name. Refused (`method_override`, `target_override`), but a
 * method override naming the request's own method.
 */
const METHOD_OVERRIDES: ReadonlySet<string> = new Set(["x-http-method-override", "x-http-method", "x-method-override"]);
const OVERRIDES: ReadonlySet<string> = new Set([...METHOD_OVERRIDES, "x-original-url", "x-rewrite-url"]);

export const PLACEHOLDER_PREFIX = "tidegate-placeholder:";
const PLACEHOLDER = /tidegate-placeholder:([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})/g;

export interface RequestContext {
  readonly from: SpiffeId;
  /** The original destination and the port the workload dialled. */
  readonly address: IpAddress;
  readonly port: number;
  /** The SNI the workload sent, normalized; null when it spoke plain HTTP. */
  readonly sni: string | null;
}

export interface RequestDeps {
  engine(): PolicyEngine | null;
  /** `peek`, when there: a name the cache holds is admitted without a promise (admitNow). */
  names(): Pick<NameCache, "resolve"> & Partial<Pick<NameCache, "peek">>;
  /** A secret's value, or null when the store has none (or cannot be read). */
  secret(name: string): string | null;
}

export type RequestVerdict =
  | {
      readonly ok: true;
      readonly rule: EgressRule;
      readonly upstream: Upstream;
      /** The request's host name, normalized; an IP literal's canonical text (the address dialled). */
      readonly name: string;
      readonly path: string;
      readonly headers: readonly Header[];
      /** The secrets injected or swapped in, by name. */
      readonly secrets: readonly string[];
    }
  | { readonly ok: false; readonly status: number; readonly reason: string; readonly detail: string; readonly rule: string | null; readonly name: string | null };

const refuse = (status: number, reason: string, detail: string, rule: string | null = null, name: string | null = null): RequestVerdict => ({ ok: false, status, reason, detail, rule, name });

/**
 * The verdict on one request. Synchronous when the name cache holds the request's host (a kept-alive
 * connection's usual case: no promise made per request); a promise only when the name must be
 * looked up.
 */
export function decideRequest(ctx: RequestContext, head: RequestHead, deps: RequestDeps): RequestVerdict | Promise<RequestVerdict> {
  const host = head.host;
  if (host === null) return refuse(400, "no_host", "the request names no host");
  // An IP literal names nothing: the query has no name, so only a cidr rule can match (by the
  // address dialled), and the literal must be that address. It is logged as the request's host.
  const name = host.name === null ? null : normalizeServerName(host.name);
  const label = name ?? host.ip;
  if (label === null) return refuse(400, "no_host", "the request's host is neither a name nor an address");
  if (ctx.sni !== null && label !== ctx.sni) return refuse(421, "host_sni_mismatch", `Host ${label} is not the name the connection gave (${ctx.sni})`, null, label);
  if (host.port !== null && host.port !== ctx.port) {
    return refuse(421, "host_port_mismatch", `Host ${label}:${host.port} names another port than the one dialled (${ctx.port})`, null, label);
  }
  if (name === null) {
    const ip = tryParseIp(label);
    if (ip === null || ip.family !== ctx.address.family || ip.value !== ctx.address.value) {
      return refuse(421, "host_address_mismatch", `Host ${label} is an address, and not the one dialled (${ctx.address.text})`, null, label);
    }
  }
  if (head.method === "CONNECT") return refuse(403, "upgrade_refused", "CONNECT is not allowed", null, label);
  if (hasLowercase(head.method)) return refuse(400, "bad_method", `method ${quote(head.method)} has a lowercase letter: no rule's http.methods can name it, and a server that upper-cases methods would take it for one they do`, null, label);
  let path: string;
  try {
    path = normalizeRequestPath(head.form === "absolute" ? new URL(head.target).pathname : head.target);
  } catch (e) {
    if (e instanceof TidegateError || e instanceof TypeError) return refuse(400, "bad_path", e.message, null, label);
    throw e;
  }
  const engine = deps.engine();
  if (engine === null) return refuse(403, "no_policy", "no policy is loaded", null, label);
  const q = { from: ctx.from, proto: "tcp" as const, port: ctx.port, address: ctx.address, name, http: { method: head.method, path } };
  const decision = engine.decide(q);
  let names: ReturnType<RequestDeps["names"]>;
  let now: Admission | null;
  try {
    names = deps.names();
    now = names.peek !== undefined ? admitNow(decision, q, names as Pick<NameCache, "peek">) : null;
  } catch (e) {
    return dnsFailed(e, decision, label);
  }
  if (now !== null) return verdictFor(head, deps, now, label, path);
  return decideAfterLookUp(decision, q, names, head, deps, label, path);
}

/** A lowercase ASCII letter in `method` (a token: the parser checked it). */
function hasLowercase(method: string): boolean {
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) return true;
  }
  return false;
}

/**
 * The verdict once the name is looked up. Its own function: a closure in decideRequest would have
 * the runtime make a scope object for decideRequest's variables on every request, promise or not.
 */
function decideAfterLookUp(decision: Decision, q: Query, names: Pick<NameCache, "resolve">, head: RequestHead, deps: RequestDeps, label: string, path: string): Promise<RequestVerdict> {
  return admit(decision, q, names).then(
    (a) => verdictFor(head, deps, a, label, path),
    (e: unknown) => dnsFailed(e, decision, label),
  );
}

/** A name look-up that failed (TidegateError) is refused `dns_failed`; anything else is a bug and is thrown. */
function dnsFailed(e: unknown, decision: Decision, name: string): RequestVerdict {
  if (!(e instanceof TidegateError)) throw e;
  return refuse(502, "dns_failed", e.message, decision.rule?.name ?? null, name);
}

/** The rest of the verdict, once the destination is admitted (or not). */
function verdictFor(head: RequestHead, deps: RequestDeps, admitted: Admission, name: string, path: string): RequestVerdict {
  const d = admitted.decision;
  if (d.verdict === "deny") return refuse(403, d.reason, admitted.upstream === null && admitted.detail !== undefined ? admitted.detail : `denied (${d.reason})`, d.rule?.name ?? null, name);
  if (d.verdict === "inspect" || d.action !== "intercept" || admitted.upstream === null) {
    return refuse(403, "not_interceptable", `rule ${d.rule.name} is not an intercept rule`, d.rule.name, name);
  }
  const rule = d.rule;
  if (head.upgrade.length > 0) {
    const offered = head.upgrade.map((p) => p.split("/")[0]!.toLowerCase());
    const notAllowed = offered.find((p) => !rule.upgrade.includes(p));
    if (notAllowed !== undefined) return refuse(403, "upgrade_refused", `Upgrade: ${head.upgrade.join(", ")}: rule ${rule.name} does not allow ${notAllowed} (upgrade:)`, rule.name, name);
  }
  const inj = injectionOf(rule);
  // Secrets swapped in for placeholders (rare): null while none was. Indexed loops and no closure
  // on the usual path, which runs on every request.
  let swappedIn: string[] | null = null;
  let missing: string | null = null;
  const headers: Header[] = [];
  const sent = head.headers.entries;
  const lower = head.headers.names(); // built once per head (a repeated head shares its list)
  // An absolute-form target goes upstream in origin-form: an HTTP/1.0 request that named its host
  // there alone gets it as Host, else the upstream would route it to its default site, which the
  // policy never judged (RFC 9112 section 3.2.2: the target's authority is the host).
  if (head.form === "absolute" && head.host !== null && !lower.includes("host")) headers.push(["Host", hostText(head, name)]);
  let length = false;
  for (let i = 0; i < sent.length; i++) {
    const hName = sent[i]![0];
    const hValue = sent[i]![1];
    const key = lower[i]!;
    if (inj.injected.has(key)) continue;
    // The framing fields go as they were read, written one way (framingField); Content-Length once.
    if (key === "content-length") {
      if (!length) headers.push(framingField(head, sent[i]!));
      length = true;
      continue;
    }
    // The host as decided: "API.Test." names api.test to the policy, and a router upstream that
    // kept the dot (or the case) would not find that site, and send the request to its default.
    if (key === "host") {
      const text = hostText(head, name);
      headers.push(hValue === text ? sent[i]! : [hName, text]);
      continue;
    }
    if (key === "transfer-encoding") {
      headers.push(sent[i]![1] === "chunked" ? sent[i]! : [hName, "chunked"]);
      continue;
    }
    if (OVERRIDES.has(key)) {
      const method = METHOD_OVERRIDES.has(key);
      if (!method || hValue.toUpperCase() !== head.method) {
        return refuse(400, method ? "method_override" : "target_override", `header ${hName} would have the upstream run ${method ? "another method" : "another path"} than the one decided`, rule.name, name);
      }
    }
    if (!hValue.includes(PLACEHOLDER_PREFIX)) {
      headers.push(sent[i]!);
      continue;
    }
    const swap = swapPlaceholders(hValue, inj, deps, (swappedIn ??= []), inj.placeholderHeaders.has(key));
    if (swap.notAllowed !== null) return refuse(403, "placeholder_not_allowed", `header ${hName} carries a placeholder for secret ${swap.notAllowed}, which rule ${rule.name} does not inject`, rule.name, name);
    if (swap.misplaced !== null) {
      return refuse(403, "placeholder_header_not_allowed", `header ${hName} carries a placeholder for secret ${swap.misplaced}, and rule ${rule.name} swaps placeholders only in ${listedText(inj)}`, rule.name, name);
    }
    missing ??= swap.missing;
    headers.push([hName, swap.value]);
  }
  const templates = rule.inject;
  for (let i = 0; i < templates.length && missing === null; i++) {
    const t = templates[i]!;
    const v = renderHeader(t, deps);
    if (typeof v === "string") headers.push([t.name, v]);
    else missing = v.missing;
  }
  if (missing !== null) return refuse(503, "secret_missing", `rule ${rule.name} injects secret ${missing}, which the agent does not hold`, rule.name, name);
  return { ok: true, rule, upstream: admitted.upstream, name, path, headers, secrets: swappedIn === null ? inj.secrets : withRuleSecrets(swappedIn, inj.secrets) };
}

/** The request's host as it goes upstream: the name decided (lowercase, no trailing dot) and the port sent; an IP literal as sent. */
function hostText(head: RequestHead, name: string): string {
  const h = head.host!;
  if (h.name === null) return h.text;
  return h.port === null ? name : `${name}:${h.port}`;
}

/**
 * The Content-Length field as it goes upstream: the length the parser read, in decimal. "010"
 * (octal 8 to a strtol-style reader), "10, 10" or the field sent twice is one "10"; so is a
 * Transfer-Encoding of "Chunked" (any case) "chunked" (verdictFor). An upstream that read either
 * otherwise would frame the body otherwise, and take the rest of it as a request nobody decided.
 * The field as sent when it is already so (a kept-alive connection's usual case: no new entry).
 */
function framingField(head: RequestHead, sent: Header): Header {
  const text = String(head.contentLength ?? 0);
  return sent[1] === text ? sent : [sent[0], text];
}

/**
 * `value` with each `tidegate-placeholder:NAME` swapped for the secret's value, each NAME added to
 * `used` once; `notAllowed`: the first NAME the rule does not inject; `misplaced`: the first it
 * does inject, in a header not on its placeholder_headers (`listed` false: the secret is not read);
 * either refuses the request. `missing`: the first the store has no value for.
 */
function swapPlaceholders(value: string, inj: Injection, deps: RequestDeps, used: string[], listed: boolean): { value: string; notAllowed: string | null; misplaced: string | null; missing: string | null } {
  let notAllowed: string | null = null;
  let misplaced: string | null = null;
  let missing: string | null = null;
  const swapped = value.replace(PLACEHOLDER, (_m, secret: string) => {
    if (!inj.allowed.has(secret)) {
      notAllowed ??= secret;
      return "";
    }
    if (!listed) {
      misplaced ??= secret;
      return "";
    }
    const v = deps.secret(secret);
    if (v === null) {
      missing ??= secret;
      return "";
    }
    if (!used.includes(secret)) used.push(secret);
    return v;
  });
  return { value: swapped, notAllowed, misplaced, missing };
}

/** The secrets a request used, in the order first used: those swapped in for placeholders, then the rule's own. */
function withRuleSecrets(swapped: string[], rule: readonly string[]): readonly string[] {
  for (const s of rule) if (!swapped.includes(s)) swapped.push(s);
  return swapped;
}

/**
 * A request's trailer fields as they go upstream: those under a name the rule injects are the
 * workload's own values for them, dropped as in the head (an upstream that reads trailers must
 * not get them beside the injected ones). Placeholders are not swapped there.
 */
export function requestTrailers(trailers: HeaderList, rule: EgressRule): Iterable<Header> {
  if (trailers.length === 0 || rule.inject.length === 0) return trailers;
  const injected = injectionOf(rule).injected;
  const names = trailers.names();
  return trailers.entries.filter((_, i) => !injected.has(names[i]!));
}

/** A rule's injected header names (lower case) and the secrets it may inject: made once per rule. */
interface Injection {
  /** The names of the headers it sets, lowercase. */
  readonly injected: ReadonlySet<string>;
  /** The secrets it may inject, and so the placeholders it swaps. */
  readonly allowed: ReadonlySet<string>;
  /** The same secrets in the order its templates name them: a request's `secrets` when it swapped no placeholder. */
  readonly secrets: readonly string[];
  /** `inject.placeholder_headers` (lowercase): the only headers a placeholder is swapped in. */
  readonly placeholderHeaders: ReadonlySet<string>;
}

/** The rule's placeholder headers for a refusal's detail: "authorization, x-api-key, api-key", or "no header (...)". */
function listedText(inj: Injection): string {
  return inj.placeholderHeaders.size === 0 ? "no header (placeholder_headers: [])" : [...inj.placeholderHeaders].join(", ");
}

const injections = new WeakMap<EgressRule, Injection>();

function injectionOf(rule: EgressRule): Injection {
  let i = injections.get(rule);
  if (i === undefined) {
    const secrets = Object.freeze([...new Set(rule.inject.flatMap((t) => t.secrets))]);
    i = { injected: new Set(rule.inject.map((t) => t.key)), allowed: new Set(secrets), secrets, placeholderHeaders: new Set(rule.placeholderHeaders) };
    injections.set(rule, i);
  }
  return i;
}
