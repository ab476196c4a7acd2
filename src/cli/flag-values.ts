/**
 * Flag values that verbs check at the command line, before they start, write or log anything: a
 * bad value is a UsageError (exit 2) naming the flag and the value. A URL's user name or password
 * is never repeated (it may be a secret, and these messages reach logs; see quoteUrl).
 */
import { SpiffeId, SpiffeIdError, TrustDomain } from "../spiffe/index.ts";
import { quoteUrl, TidegateError } from "../errors.ts";
import { httpsOrigin } from "../runtime/https-origin.ts";
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

/** A SPIFFE ID flag (`--from`, `--signer`), parsed. */
export function spiffeIdFlag(text: string, flag: string): SpiffeId {
  try {
    return SpiffeId.parse(text);
  } catch (e) {
    if (e instanceof SpiffeIdError) throw new UsageError(`${flag}: ${e.message}`);
    throw e;
  }
}

/** An `https://host[:port]` flag (src/runtime/https-origin.ts), as the agent's --server and attest's --kubelet-url take it; returns its origin. */
export function httpsOriginFlag(text: string, flag: string): string {
  const o = httpsOrigin(text);
  if (o.url !== null) return o.url.origin;
  if (o.why === "not_a_url") throw new UsageError(`${flag} ${quoteUrl(text)} is not a URL (use https://host:port)`);
  if (o.why === "credentials") throw new UsageError(`${flag}: the URL for ${new URL(text).host} carries a user name or password (not repeated): use https://host:port`);
  throw new UsageError(`${flag} ${quoteUrl(text)} must be https://host:port and nothing more`);
}
