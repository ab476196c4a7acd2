/**
 * A SPIFFE trust domain (SPIFFE-ID standard section 2.1): a non-empty name of `[a-z0-9._-]`, at
 * most 255 bytes. Immutable; only `parse` makes one, so every instance is valid.
 *
 * `parse` takes the bare name ("example.org") or the trust domain's own ID
 * ("spiffe://example.org"). An ID with a path is `spiffeid_trust_domain_has_path` (unlike
 * go-spiffe, which takes the trust domain of any ID): a workload ID where a trust domain is
 * expected is a mistake in a configuration, not something to guess about.
 */
import { SpiffeIdError, quote } from "./errors.ts";
import { SCHEME, walkPrefix, walkTrustDomain } from "./charset.ts";
import { SpiffeId } from "./id.ts";

export class TrustDomain {
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
    Object.freeze(this);
  }

  /**
   * Throws SpiffeIdError with the trust-domain codes of the ID parser (a bare name also gets
   * `spiffeid_bad_trust_domain_char` for '/'). An input containing ":/" is read as an ID, so
   * "spiffe:/x" or "https://x" is `spiffeid_wrong_scheme`, as in go-spiffe.
   */
  static parse(name: string): TrustDomain {
    const subject = quote(name);
    if (name.includes(":/")) {
      const { trustDomain, pathStart } = walkPrefix(subject, name, "trust domain");
      if (pathStart < name.length) {
        throw new SpiffeIdError(
          "spiffeid_trust_domain_has_path",
          `spiffeid: ${subject} is not a trust domain: it has a path (at ${pathStart})`,
        );
      }
      return new TrustDomain(trustDomain);
    }
    const end = walkTrustDomain(subject, name, 0);
    if (end < name.length) {
      throw new SpiffeIdError(
        "spiffeid_bad_trust_domain_char",
        `spiffeid: ${subject} has an invalid trust domain character "/" at ${end}`,
      );
    }
    return new TrustDomain(name);
  }

  /** The trust domain's own SPIFFE ID, `spiffe://<name>` with an empty path. */
  id(): SpiffeId {
    return SpiffeId.fromPath(this, "");
  }

  idString(): string {
    return SCHEME + this.name;
  }

  equals(other: TrustDomain): boolean {
    return this.name === other.name;
  }

  toString(): string {
    return this.name;
  }
}
