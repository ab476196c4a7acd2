/**
 * The proxies' view of the agent's identity half (src/proxy/identity-source.ts): the SVIDs
 * AgentCore holds, by SPIFFE ID, and its bundle. A new bundle object (the server handed over a
 * changed one) is a new trust generation. Federated trust domains join with issue 12.
 */
import { BundleSet, formatPemBundle, type Bundle } from "../spiffe/index.ts";
import type { TrustDomain } from "../spiffe/trust-domain.ts";
import type { Credential, IdentitySource, TrustNow } from "../proxy/identity-source.ts";
import type { HeldSvid } from "./svid-cache.ts";

export interface IdentityHolder {
  readonly svids: ReadonlyMap<string, HeldSvid>;
  readonly bundle: Bundle;
}

export function proxyIdentity(core: IdentityHolder, now: () => number = Date.now): IdentitySource {
  let held: { bundle: Bundle; trust: TrustNow } | null = null;
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
      if (held?.bundle !== bundle) {
        generation += 1;
        const pem = formatPemBundle(bundle);
        const ours = bundle.trustDomain;
        held = { bundle, trust: { generation, bundles: BundleSet.of(bundle), caPem: (td: TrustDomain) => (td.equals(ours) ? pem : null), allCaPem: pem } };
      }
      return held.trust;
    },
  };
}
