/**
 * Flag values that verbs check at the command line, before they start, write or log anything: a
 * bad value is a UsageError (exit 2) naming the flag and the value. A URL's user name or password
 * is never repeated (it may be a secret, and these messages reach logs; see quoteUrl).
 */
import { TrustDomain } from "../spiffe/trust-domain.ts";
import { quoteUrl, TidegateError } from "../errors.ts";
import { UsageError } from "./usage-error.ts";

/** `--trust-domain TD` (a bare name or `spiffe://name`), parsed. */
export function trustDomainFlag(text: string, flag = "--trust-domain"): TrustDomain {
  try {
    return TrustDomain.parse(text);
  } catch (e) {
    if (e instanceof TidegateError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
}

/**
 * An `https://host[:port]` flag with nothing after the authority (no path, query, fragment, user
 * name or password), as the agent's --server and attest's --kubelet-url take it; returns its origin.
 */
export function httpsOriginFlag(text: string, flag: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new UsageError(`${flag} ${quoteUrl(text)} is not a URL (use https://host:port)`);
  }
  if (u.username !== "" || u.password !== "") throw new UsageError(`${flag}: the URL for ${u.host} carries a user name or password (not repeated): use https://host:port`);
  if (u.protocol !== "https:" || (u.pathname !== "/" && u.pathname !== "") || u.search || u.hash) {
    throw new UsageError(`${flag} ${quoteUrl(text)} must be https://host:port and nothing more`);
  }
  return u.origin;
}
