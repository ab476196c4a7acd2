/**
 * The proxies' view of the agent's identity half (src/proxy/identity-source.ts): the SVIDs
 * AgentCore holds, by SPIFFE ID, and its bundle. A new bundle object (the server handed over a
 * changed one) is a new trust generation, and so is any change in the federated trust domains
 * the agent trusts now: one handed over, replaced, dropped, or past its expiry (federated.ts). An
 * expiry moved later with the bundle unchanged (the server refetched it) is not a change.
 * Each trust domain keeps its own roots (BundleSet): a peer verifies only against its own.
 */
import { BundleSet, formatPemBundle, type Bundle } from "../spiffe/index.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";
import type { Credential, IdentitySource, TrustNow } from "../proxy/identity-source.ts";
import type { HeldSvid } from "./svid-cache.ts";
import { liveFederated, type FederatedMap } from "./federated.ts";

export interface IdentityHolder {
  readonly svids: ReadonlyMap<string, HeldSvid>;
  readonly bundle: Bundle;
  /** Absent: no federation. */
  readonly federated?: FederatedMap;
}

/** The same bundles, in the same order (equal content, not the same objects). */
function sameBundles(a: readonly Bundle[], b: readonly Bundle[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i] || x.equals(b[i]!));
}

export function proxyIdentity(core: IdentityHolder, now: () => number = Date.now): IdentitySource {
  let held: { bundle: Bundle; others: Bundle[]; trust: TrustNow } | null = null;
  let generation = 0;
  return {
    svid(id: string): Credential | null {
      const t = now();
      let best: HeldSvid | null = null;
      for (const h of core.svids.values()) {
        if (h.spiffeId !== id || t < h.notBefore || t >= h.notAfter) continue;
        if (best === null || h.notAfter > best.notAfter) best = h;
      }
      return best;
    },
    trust(): TrustNow {
      const bundle = core.bundle;
      const others = core.federated === undefined ? [] : liveFederated(core.federated, now());
      // A sync that only moved an expiry hands over a new map of equal bundles: same trust, same generation.
      if (held !== null && held.bundle === bundle && sameBundles(held.others, others)) {
        held.others = others; // equal: the next comparison finds the same objects
        return held.trust;
      }
      generation += 1;
      const all = [bundle, ...others];
      const pems = new Map(all.map((b) => [b.trustDomain.name, formatPemBundle(b)]));
      held = {
        bundle,
        others,
        trust: { generation, bundles: BundleSet.of(...all), caPem: (td: TrustDomain) => pems.get(td.name) ?? null, allCaPem: [...pems.values()].join("") },
      };
      return held.trust;
    },
  };
}
