/**
 * A SPIFFE ID (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md section 2):
 * `spiffe://<trust domain><path>`, where the path is "" or "/seg/seg". Immutable and valid by
 * construction; `toString()` gives back exactly the text that was parsed (there is nothing to
 * normalise, since anything with two spellings is rejected).
 *
 * The parser walks characters rather than using a URL parser (as go-spiffe does), so what is
 * accepted does not depend on a runtime's URL implementation. The rules and which code wins when
 * an input breaks several are in ./charset.ts.
 */
import { SpiffeIdError, quote } from "./errors.ts";
import { MAX_ID_BYTES, SCHEME, utf8Length, walkPath, walkPrefix, walkSegment } from "./charset.ts";
import { TrustDomain } from "./trust-domain.ts";

export class SpiffeId {
  readonly trustDomain: TrustDomain;
  /** "" for a trust domain's own ID, otherwise "/seg/seg" (case-sensitive). */
  readonly path: string;

  private constructor(trustDomain: TrustDomain, path: string) {
    this.trustDomain = trustDomain;
    this.path = path;
    Object.freeze(this);
  }

  /** Throws SpiffeIdError with the code of the first rule the text breaks. */
  static parse(uri: string): SpiffeId {
    const subject = quote(uri);
    const { trustDomain, pathStart } = walkPrefix(subject, uri);
    walkPath(subject, uri, pathStart);
    return new SpiffeId(TrustDomain.parse(trustDomain), uri.slice(pathStart));
  }

  /**
   * `path` is "" or starts with '/' (else `spiffeid_no_leading_slash`); it follows the path
   * rules of `parse`, and the whole ID must fit in 2048 bytes.
   */
  static fromPath(td: TrustDomain, path: string): SpiffeId {
    const subject = `path ${quote(path)}`;
    if (path !== "" && !path.startsWith("/")) {
      throw new SpiffeIdError("spiffeid_no_leading_slash", `spiffeid: ${subject} does not start with "/"`);
    }
    const length = SCHEME.length + td.name.length + utf8Length(path);
    if (length > MAX_ID_BYTES) {
      throw new SpiffeIdError(
        "spiffeid_too_long",
        `spiffeid: ${subject} in ${quote(td.name)} makes an ID of ${length} bytes, more than ${MAX_ID_BYTES}`,
      );
    }
    walkPath(subject, path, 0);
    return new SpiffeId(td, path);
  }

  /**
   * Each segment is checked alone (so a '/' inside one is `spiffeid_bad_path_segment_char`);
   * no segments gives the trust domain's own ID.
   */
  static fromSegments(td: TrustDomain, ...segments: string[]): SpiffeId {
    for (const seg of segments) walkSegment(`segment ${quote(seg)}`, seg);
    return SpiffeId.fromPath(td, segments.map((s) => `/${s}`).join(""));
  }

  memberOf(td: TrustDomain): boolean {
    return this.trustDomain.equals(td);
  }

  equals(other: SpiffeId): boolean {
    return this.trustDomain.equals(other.trustDomain) && this.path === other.path;
  }

  /** The text, made on first use: the proxy asks for it on every request it decides. */
  #text: string | null = null;

  toString(): string {
    return (this.#text ??= SCHEME + this.trustDomain.name + this.path);
  }
}
