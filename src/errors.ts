/**
 * The base of every error tidegate throws on purpose.
 *
 * `code` is stable (tests and callers match on it); `message` is lowercase, starts with the
 * module's name ("spiffeid: ...", "x509svid: ...") and names the offending input, never a secret.
 */
export class TidegateError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `e` is a TidegateError (optionally with the given code). */
export function isTidegateError(e: unknown, code?: string): e is TidegateError {
  return e instanceof TidegateError && (code === undefined || e.code === code);
}
