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
  const q = printable(JSON.stringify(cut));
  return cut === text ? q : `${q}...`;
}

/** `text` with every control character and everything from DEL up written as `\uXXXX`: printable ASCII. */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
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

/**
 * What a terminal may act on, or that makes it show text other than it is: C0 controls but tab
 * and newline (and a carriage return before a newline), DEL, C1 controls (U+009B is CSI on its
 * own), format characters (bidi overrides and isolates, zero-width ones), line and paragraph
 * separators.
 */
const TERMINAL_UNSAFE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]|\r(?!\n)/gu;

/**
 * `text` with every character of TERMINAL_UNSAFE written as `\uXXXX` (each UTF-16 unit): the last
 * guard of what the CLI writes to stderr (src/cli/main.ts), whatever a message quoted.
 */
export function terminalSafe(text: string): string {
  return text.replace(TERMINAL_UNSAFE, (c) => [...Array(c.length).keys()].map((i) => `\\u${c.charCodeAt(i).toString(16).padStart(4, "0")}`).join(""));
}
