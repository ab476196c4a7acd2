/**
 * Bundles of several trust domains, one per trust domain, never merged: the authorities of one
 * trust domain are only ever returned for that trust domain (SPIFFE Trust Domain and Bundle,
 * section 3: validators "must choose the bundle corresponding to the trust domain that the SVID
 * resides in"; section 6.4 on why keys must not leak across trust domains).
 *
 * A BundleSet is the X.509 authority source the SVID verifier takes; `sourceOf(bundle)` makes one
 * bundle a source. `BundleSet.of` refuses two bundles for one trust domain (`bundle_set_duplicate`);
 * `with` replaces the bundle of its trust domain, as a bundle refresh does.
 */
import type { Bundle } from "./bundle.ts";
import { BundleError } from "./bundle.ts";
import { quote } from "./errors.ts";
import type { TrustDomain } from "./trust-domain.ts";

/** What the X.509-SVID verifier needs (declared in src/x509/verify.ts; same shape). */
export interface X509AuthoritySource {
  /** The DER CA certificates trusted for `td`, or undefined when there is no bundle for it. */
  x509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined;
}

export class BundleSet implements X509AuthoritySource {
  private readonly byName: ReadonlyMap<string, Bundle>;

  private constructor(byName: Map<string, Bundle>) {
    this.byName = byName;
    Object.freeze(this);
  }

  static of(...bundles: Bundle[]): BundleSet {
    const m = new Map<string, Bundle>();
    for (const b of bundles) {
      const name = b.trustDomain.name;
      if (m.has(name)) {
        throw new BundleError("bundle_set_duplicate", `bundle: two bundles for trust domain ${quote(name)}`);
      }
      m.set(name, b);
    }
    return new BundleSet(m);
  }

  get size(): number {
    return this.byName.size;
  }

  get(td: TrustDomain): Bundle | undefined {
    return this.byName.get(td.name);
  }

  has(td: TrustDomain): boolean {
    return this.byName.has(td.name);
  }

  /** A set where `bundle` replaces the bundle of its trust domain (or is added). */
  with(bundle: Bundle): BundleSet {
    const m = new Map(this.byName);
    m.set(bundle.trustDomain.name, bundle);
    return new BundleSet(m);
  }

  without(td: TrustDomain): BundleSet {
    const m = new Map(this.byName);
    m.delete(td.name);
    return new BundleSet(m);
  }

  /** The bundles, sorted by trust domain name. */
  bundles(): Bundle[] {
    return [...this.byName.keys()].sort().map((n) => this.byName.get(n)!);
  }

  x509Authorities(td: TrustDomain): readonly Uint8Array[] | undefined {
    return this.get(td)?.x509Authorities;
  }

  jwtAuthorities(td: TrustDomain): ReadonlyMap<string, JsonWebKey> | undefined {
    return this.get(td)?.jwtAuthorities;
  }

  equals(other: BundleSet): boolean {
    if (this.size !== other.size) return false;
    for (const [name, b] of this.byName) {
      const o = other.byName.get(name);
      if (o === undefined || !b.equals(o)) return false;
    }
    return true;
  }
}

/** One bundle as an X.509 authority source: its authorities for its own trust domain, nothing for others. */
export function sourceOf(bundle: Bundle): X509AuthoritySource {
  return BundleSet.of(bundle);
}
