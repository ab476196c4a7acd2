/**
 * The base of every error tidegate throws on purpose.
 *
 * `code` is stable (tests and callers match on it); `message` is lowercase, starts with the
 * module's name ("spiffeid: ...", "x509svid: ...") and names the offending input, never a secret.
 * A module with a closed list of codes subclasses it with that list as `C`
 * (`class CaError extends TidegateError<CaErrorCode> {}`), so a code outside it does not compile.
 */
export class TidegateError<C extends string = string> extends Error {
  readonly code: C;

  constructor(code: C, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `e` is a TidegateError (optionally with the given code). */
export function isTidegateError(e: unknown, code?: string): e is TidegateError {
  return e instanceof TidegateError && (code === undefined || e.code === code);
}

/**
 * `text` as a printable ASCII quoted string for error messages: JSON escapes, `\uXXXX` for
 * everything from DEL up, cut to 100 characters (then followed by `...`). Only for inputs that are
 * not secret: a message never carries a token, key or secret value, quoted or not.
 */
export function quote(text: string): string {
  const cut = text.length > 100 ? text.slice(0, 100) : text;
  const q = JSON.stringify(cut).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
  return cut === text ? q : `${q}...`;
}

/**
 * URL text for error messages, quoted like `quote`, never with a user name or password (it may be
 * a secret): text with an '@' is shown as its scheme and host only, when it parses as a URL with a
 * host, and not at all otherwise.
 */
export function quoteUrl(text: string): string {
  if (!text.includes("@")) return quote(text);
  let host = "";
  try {
    const u = new URL(text);
    if (u.host !== "") host = `${u.protocol}//${u.host}`;
  } catch {
    // not a URL: nothing of it is shown
  }
  return host === "" ? "(not repeated: it has an '@' and may hold a password)" : `${quote(host)} (the rest not repeated: it has an '@' and may hold a password)`;
}
