/**
 * Where bytes go (DESIGN.md section 3): the proxy never sends a byte to an address it did not get
 * itself. For a host rule it resolves the name the connection gave (through the `dns:` setting's
 * NameCache) and refuses, as `address_not_resolved`, an original destination outside the answer:
 * otherwise a workload could pair an allowed name with an address of its choosing and have a
 * secret injected toward it. For a cidr rule the original address is already inside the rule's
 * range (that is how the rule matched). A failed lookup refuses too (it throws PolicyError
 * `policy_dns_failed`, which the proxy records as a deny).
 */
import type { IpAddress } from "./address.ts";
import type { NameCache } from "./name-cache.ts";
import type { Decision, Query } from "./query.ts";

export interface Upstream {
  /** Where the proxy may connect: the original address, once admitted. */
  readonly address: IpAddress;
  readonly port: number;
  /** The name to present upstream (SNI) and to verify a Web PKI certificate against; null for cidr rules. */
  readonly serverName: string | null;
}

export type Admission =
  | { readonly decision: Decision & { verdict: "allow" }; readonly upstream: Upstream }
  | {
      readonly decision: Exclude<Decision, { verdict: "allow" }>;
      readonly upstream: null;
      /** With `address_not_resolved`: what the name resolves to, for the log and `policy explain`. */
      readonly detail?: string;
    };

/** The first this many answers are named in an `address_not_resolved` detail. */
const NAMED_ANSWERS = 4;

function same(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.value === b.value;
}

/**
 * The addresses a decided rule lets the proxy use for this query when they are known without a
 * look-up: none for a deny or a host rule without a name, the original address for a cidr rule,
 * what `peek` holds for a host rule's name; undefined when that name must be looked up.
 */
function knownAddresses(decision: Decision, q: Query, names: Pick<NameCache, "peek">): readonly IpAddress[] | undefined {
  if (decision.verdict !== "allow") return [];
  if (decision.rule.to.kind === "cidr") return q.address === null ? [] : [q.address];
  if (q.name === null) return [];
  return names.peek(q.name);
}

/** A cache that holds no name: every host rule's name is looked up. */
const NOTHING_KNOWN: Pick<NameCache, "peek"> = { peek: () => undefined };

/** The addresses a decided rule lets the proxy use for this query (empty when it decides nothing). */
export async function addressesFor(decision: Decision, q: Query, names: Pick<NameCache, "resolve">): Promise<readonly IpAddress[]> {
  return knownAddresses(decision, q, NOTHING_KNOWN) ?? names.resolve(q.name!);
}

/** A decision checked against the addresses its rule may reach. Throws PolicyError on a failed lookup. */
export async function admit(decision: Decision, q: Query, names: Pick<NameCache, "resolve">): Promise<Admission> {
  // null only for an allow by a host rule whose name must be looked up
  return admitNow(decision, q, NOTHING_KNOWN) ?? judge(decision as Decision & { verdict: "allow" }, q, await names.resolve(q.name!));
}

/**
 * `admit` when no look-up is needed: a deny, a cidr rule, or a name `names.peek` holds (a static
 * entry or a cached answer); null when the name must be looked up (then `admit`). The
 * intercepting proxy asks this first on every request: the async path's promises were a sixth of
 * what a request allocated there.
 */
export function admitNow(decision: Decision, q: Query, names: Pick<NameCache, "peek">): Admission | null {
  if (decision.verdict !== "allow") return { decision, upstream: null };
  if (q.address === null) throw new TypeError("admit: the query has no original address");
  const known = knownAddresses(decision, q, names);
  return known === undefined ? null : judge(decision, q, known);
}

function judge(decision: Decision & { verdict: "allow" }, q: Query, allowed: readonly IpAddress[]): Admission {
  const address = q.address!;
  let found = false;
  for (let i = 0; i < allowed.length && !found; i++) found = same(allowed[i]!, address); // no closure: every intercepted request comes here
  if (!found) {
    return { decision: { verdict: "deny", rule: decision.rule, reason: "address_not_resolved" }, upstream: null, detail: unresolvedDetail(q.name!, allowed, address) };
  }
  const serverName = decision.rule.to.kind === "host" ? q.name : null;
  return { decision, upstream: { address, port: decision.upstreamPort, serverName } };
}

/** `NAME resolves to A, B, not to ADDRESS`: an empty answer (NXDOMAIN, no record) says so. */
function unresolvedDetail(name: string, answers: readonly IpAddress[], address: IpAddress): string {
  if (answers.length === 0) return `${name} resolves to no address (dns: hosts and servers), not to ${address.text}`;
  const more = answers.length - NAMED_ANSWERS;
  const named = answers.slice(0, NAMED_ANSWERS).map((a) => a.text).join(", ");
  return `${name} resolves to ${named}${more > 0 ? ` and ${more} more` : ""}, not to ${address.text}`;
}
