/**
 * The kernel's share of one workload (src/policy/kernel-share.ts) as LPM trie entries of the
 * policy maps (bpf/tidegate.h, `tg_policy4`/`tg_policy6`).
 *
 * Guarantees:
 * - every managed cgroup gets a /0 entry in each family (prefix 0 of the address: the key's
 *   prefixlen is 64, the cgroup id alone), so the programs tell a managed cgroup with no rule for
 *   an address (TCP redirected, UDP denied) from an unknown one;
 * - an LPM lookup returns only the longest matching prefix, so each entry carries its own port
 *   rules and those of every enclosing prefix of the same cgroup; the share's entries never
 *   overlap in address x port, so for one address and port at most one of them matches;
 * - more than TG_MAX_PORT_RULES rules at one prefix: TCP rules are dropped from the kernel (the
 *   proxy decides them, with the same answer), and if UDP rules alone still do not fit the whole
 *   share is refused (UDP has no proxy to fall back on).
 */
import { TidegateError } from "../errors.ts";
import { parseCidr, type Cidr } from "../policy/address.ts";
import type { KernelEntry } from "../policy/kernel-share.ts";
import { TG_ACT, TG_MAX_PORT_RULES, TG_PROTO, type PortRule } from "./layout.ts";

const MAX_PORT_RULES = TG_MAX_PORT_RULES;
const ZERO: Readonly<Record<4 | 6, Cidr>> = { 4: parseCidr("0.0.0.0/0"), 6: parseCidr("::/0") };

export class ShareError extends TidegateError<"bpf_share_too_large"> {}

export interface LpmEntry {
  readonly cgroupId: bigint;
  readonly cidr: Cidr;
  readonly rules: readonly PortRule[];
}

function encloses(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefix <= inner.prefix && outer.first <= inner.first && inner.last <= outer.last;
}

/** `ruleIndex` maps a rule name to its index in the loaded policy (events name rules by it). */
export function lpmEntries(cgroupId: bigint, share: readonly KernelEntry[], ruleIndex: (name: string) => number, workload: string): LpmEntry[] {
  const rule = (e: KernelEntry): PortRule => ({
    portLo: e.portLo,
    portHi: e.portHi,
    proto: e.proto === "tcp" ? TG_PROTO.TCP : TG_PROTO.UDP,
    action: e.action === "deny" ? TG_ACT.DENY : TG_ACT.DIRECT,
    ruleId: ruleIndex(e.rule),
  });
  const out: LpmEntry[] = [];
  for (const family of [4, 6] as const) {
    const mine = share.filter((e) => e.cidr.family === family);
    const prefixes = new Map<string, Cidr>();
    for (const e of mine) prefixes.set(e.cidr.text, e.cidr);
    const zero = [...prefixes.values()].some((c) => c.prefix === 0);
    if (!zero) out.push({ cgroupId, cidr: ZERO[family], rules: [] });
    for (const cidr of prefixes.values()) {
      const covering = mine.filter((e) => encloses(e.cidr, cidr));
      let rules = covering.map(rule);
      if (rules.length > MAX_PORT_RULES) {
        rules = rules.filter((r) => r.proto === TG_PROTO.UDP);
        if (rules.length > MAX_PORT_RULES) {
          throw new ShareError(
            "bpf_share_too_large",
            `bpf: workload ${JSON.stringify(workload)}: ${rules.length} udp rules apply to ${cidr.text}, more than the kernel's ${MAX_PORT_RULES}; merge some udp rules`,
          );
        }
      }
      out.push({ cgroupId, cidr, rules });
    }
  }
  return out;
}
