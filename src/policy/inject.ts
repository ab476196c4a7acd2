/**
 * Header injection templates (`inject.headers` of an intercept rule; DESIGN.md section 7).
 *
 * A template is literal text with `${secret:NAME}` references; the policy holds only the names,
 * never a value. Rejected (policy_bad_header):
 * - a header name that is not an RFC 9110 token, or one that frames or routes the message
 *   (Host, Content-Length, Transfer-Encoding, Connection, Upgrade, TE, Trailer, Keep-Alive,
 *   Proxy-Connection, Expect): injecting those would let a rule change where or how a body goes;
 * - a value with CR, LF, NUL or another control character except tab (header splitting);
 * - `${` that does not start a well-formed `${secret:NAME}`, NAME being 1-64 of [A-Za-z0-9_.-]
 *   starting with a letter, digit or underscore (a typo must not send the literal text);
 * - a template with no text at all.
 *
 * `inject.placeholder_headers` names the only request headers in which a workload's
 * `tidegate-placeholder:NAME` is swapped for a secret the rule injects (DEFAULT_PLACEHOLDER_HEADERS
 * when absent; `[]`: nowhere). Rejected (policy_bad_header): a name refused above, and a name listed
 * twice (in any case: header names are case-insensitive, RFC 9110 section 5.1).
 */
import { quote } from "../errors.ts";
import { PolicyError } from "./errors.ts";

export interface HeaderTemplate {
  /** As written (case kept for the wire); compare with `key`. */
  readonly name: string;
  /** Lowercase name. */
  readonly key: string;
  readonly parts: readonly (string | { readonly secret: string })[];
  /** The secrets the template names, in order of first use. */
  readonly secrets: readonly string[];
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$/;
const SECRET_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const FORBIDDEN = new Set(["host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive", "proxy-connection", "expect"]);

const bad = (why: string) => new PolicyError("policy_bad_header", `policy: ${why}`);

export function parseSecretName(text: string): string {
  if (!SECRET_NAME.test(text)) throw bad(`secret name ${quote(text)} is not 1-64 of letters, digits, '_', '.', '-'`);
  return text;
}

export function parseHeaderName(text: string): string {
  if (!TOKEN.test(text)) throw bad(`header name ${quote(text)} is not an HTTP token`);
  if (FORBIDDEN.has(text.toLowerCase())) throw bad(`header ${quote(text)} cannot be injected (it frames or routes the request)`);
  return text;
}

/**
 * The request headers a placeholder is swapped in when a rule does not say (`inject.placeholder_headers`
 * absent): those that carry a credential to the API and that APIs do not send back. Any other header
 * a workload could fill with a placeholder is one some API echoes (X-Request-Id, a header quoted in an
 * error), and the workload would read the secret in the answer (docs/security-model.md, "Not covered").
 */
export const DEFAULT_PLACEHOLDER_HEADERS: readonly string[] = Object.freeze(["Authorization", "X-Api-Key", "Api-Key"]);

/** `inject.placeholder_headers`: each an injectable header name, none twice in any case; the names lowercase. */
export function parsePlaceholderHeaders(names: readonly string[]): readonly string[] {
  const keys: string[] = [];
  for (const name of names) {
    parseHeaderName(name);
    const key = name.toLowerCase();
    if (keys.includes(key)) throw bad(`header ${quote(name)} is listed twice in placeholder_headers`);
    keys.push(key);
  }
  return Object.freeze(keys);
}

export function parseHeaderTemplate(name: string, template: string): HeaderTemplate {
  parseHeaderName(name);
  if (template.length === 0) throw bad(`header ${quote(name)}: empty value`);
  if (template.length > 8192) throw bad(`header ${quote(name)}: value longer than 8192 characters`);
  for (let i = 0; i < template.length; i++) {
    const c = template.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) throw bad(`header ${quote(name)}: control character at offset ${i}`);
  }
  const parts: (string | { secret: string })[] = [];
  const secrets: string[] = [];
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf("${", at);
    if (open === -1) {
      parts.push(template.slice(at));
      break;
    }
    if (open > at) parts.push(template.slice(at, open));
    const close = template.indexOf("}", open);
    const inner = close === -1 ? "" : template.slice(open + 2, close);
    if (close === -1 || !inner.startsWith("secret:")) {
      throw bad(`header ${quote(name)}: "\${" at offset ${open} does not start a \${secret:NAME} reference`);
    }
    const secret = parseSecretName(inner.slice("secret:".length));
    parts.push({ secret });
    if (!secrets.includes(secret)) secrets.push(secret);
    at = close + 1;
  }
  return Object.freeze({ name, key: name.toLowerCase(), parts: Object.freeze(parts), secrets: Object.freeze(secrets) });
}

/** Where a rendered header's secrets come from: a value, or null when there is none. */
export interface SecretSource {
  secret(name: string): string | null;
}

/**
 * The header's value with `store.secret(NAME)` for each reference (the proxy's job, issue 8), or
 * `{ missing: NAME }` for the first secret the store has no value for. A store object,
 * not a callback, and indexed loops: the proxy renders on every request.
 */
export function renderHeader(t: HeaderTemplate, store: SecretSource): string | { readonly missing: string } {
  // Each secret is read once. While every value is the very string of the last rendering (a
  // store keeps one string per value), the last rendering is the answer and no string is made;
  // else the header is rendered from the values just read, so the two always agree.
  const names = t.secrets;
  const last = lastRendered.get(t);
  let same = last !== undefined;
  const values: string[] = [];
  for (let i = 0; i < names.length; i++) {
    const v = store.secret(names[i]!);
    if (v === null) {
      lastRendered.delete(t); // a removed secret's value is not kept here
      return { missing: names[i]! };
    }
    values.push(v);
    if (same && last!.values[i] !== v) same = false;
  }
  if (same) return last!.out;
  let out = "";
  const parts = t.parts;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    out += typeof p === "string" ? p : values[names.indexOf(p.secret)]!;
  }
  lastRendered.set(t, { values, out });
  return out;
}

/** Each template's last rendering and the values it was made from, while the template lives (a policy reload makes new ones). */
const lastRendered = new WeakMap<HeaderTemplate, { readonly values: readonly string[]; readonly out: string }>();
