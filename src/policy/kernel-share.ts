/**
 * The kernel's share of the policy for one workload identity (DESIGN.md sections 3 and 5): the
 * deny and direct ranges the cgroup's connect and sendmsg programs apply on their own, with
 * addresses and ports only.
 *
 * Guarantees, which a property test checks against the engine for random rule sets:
 * - TCP: a `deny` or `direct` cidr rule (without http conditions) becomes an entry only when no
 *   earlier rule of this workload could match an address in it: an earlier host rule counts as
 *   matching every address on its port range and protocol. Everything else is redirected to the
 *   proxy, which applies the order. So a kernel hit always equals the engine's decision.
 * - UDP never reaches the proxy, so its share is exact: each udp rule's (range x ports) minus
 *   what earlier udp rules already decided, cut back into CIDR blocks. A UDP destination no entry
 *   names is denied, as the engine denies it (no rule).
 * - Entries never overlap, so the kernel may look them up in any order (LPM included).
 * - The unspecified address (0.0.0.0, ::), which Linux connects to this host's loopback, is
 *   decided as the loopback address it reaches (127.0.0.1, ::1; address.ts reachedAddress), as the
 *   proxy decides it: a range holding 0.0.0.0 but not 127.0.0.1 (`direct 0.0.0.0/8`) would else let
 *   a workload through to the host's loopback, which no rule allowed.
 */
import type { SpiffeId } from "../spiffe/index.ts";
import { cidrContains, cidrsOfRange, type Cidr, type IpAddress } from "./address.ts";
import type { EgressRule, Policy, Proto } from "./model.ts";
import { fromMatches } from "./rule-match.ts";

export interface KernelEntry {
  readonly proto: Proto;
  readonly cidr: Cidr;
  readonly portLo: number;
  readonly portHi: number;
  readonly action: "deny" | "direct";
  readonly rule: string;
}

export type KernelVerdict =
  | { readonly verdict: "deny" | "direct"; readonly rule: string | null }
  | { readonly verdict: "redirect" };

interface Box {
  readonly family: 4 | 6;
  readonly first: bigint;
  readonly last: bigint;
  readonly lo: number;
  readonly hi: number;
}

function boxOf(r: EgressRule): Box | null {
  if (r.to.kind !== "cidr") return null;
  return { family: r.to.cidr.family, first: r.to.cidr.first, last: r.to.cidr.last, lo: r.ports.lo, hi: r.ports.hi };
}

function overlaps(a: Box, b: Box): boolean {
  return a.family === b.family && a.first <= b.last && b.first <= a.last && a.lo <= b.hi && b.lo <= a.hi;
}

/** `a` minus `b`: at most four boxes (below, above in address; left, right in port). */
function subtract(a: Box, b: Box): Box[] {
  if (!overlaps(a, b)) return [a];
  const out: Box[] = [];
  if (a.first < b.first) out.push({ ...a, last: b.first - 1n });
  if (a.last > b.last) out.push({ ...a, first: b.last + 1n });
  const first = a.first > b.first ? a.first : b.first;
  const last = a.last < b.last ? a.last : b.last;
  if (a.lo < b.lo) out.push({ ...a, first, last, hi: b.lo - 1 });
  if (a.hi > b.hi) out.push({ ...a, first, last, lo: b.hi + 1 });
  return out;
}

function entriesOf(boxes: readonly Box[], r: EgressRule): KernelEntry[] {
  return boxes.flatMap((b) =>
    cidrsOfRange(b.family, b.first, b.last).map((cidr) =>
      Object.freeze({ proto: r.proto, cidr, portLo: b.lo, portHi: b.hi, action: r.action as "deny" | "direct", rule: r.name }),
    ),
  );
}

export function kernelShare(policy: Policy, id: SpiffeId): KernelEntry[] {
  const mine = policy.egress.filter((r) => fromMatches(r, id));
  const entries: KernelEntry[] = [];
  const udpEarlier: Box[] = [];
  mine.forEach((r, i) => {
    const box = boxOf(r);
    if (r.proto === "udp") {
      if (box === null) return; // load.ts refuses udp host rules
      let rest: Box[] = [box];
      for (const e of udpEarlier) rest = rest.flatMap((b) => subtract(b, e));
      entries.push(...entriesOf(rest, r));
      udpEarlier.push(box);
      return;
    }
    if (box === null || (r.action !== "deny" && r.action !== "direct") || r.http !== null) return;
    const shadowed = mine.slice(0, i).some((e) => {
      if (e.proto !== "tcp" || e.ports.lo > box.hi || box.lo > e.ports.hi) return false;
      const other = boxOf(e);
      return other === null || overlaps(box, other);
    });
    if (!shadowed) entries.push(...entriesOf([box], r));
  });
  return asReached(entries);
}

/** The loopback address that a connect or sendmsg to the unspecified address (0) reaches, per family. */
const LOOPBACK: Readonly<Record<4 | 6, bigint>> = { 4: 0x7f000001n, 6: 1n };

/**
 * `entries` with the unspecified address decided as the loopback it reaches. An entry that holds
 * both (0.0.0.0/0, ::/0) decides them alike already and stays as it is; one that holds 0 without
 * the loopback address has 0 taken out; one that holds the loopback address without 0 gets a
 * twin for 0 (same protocol, ports, action and rule). Entries stay apart: for a protocol and
 * port, the one entry that held the loopback address is the only one that now holds 0.
 */
function asReached(entries: readonly KernelEntry[]): KernelEntry[] {
  const out: KernelEntry[] = [];
  for (const e of entries) {
    const lo = LOOPBACK[e.cidr.family];
    const holdsLoopback = e.cidr.first <= lo && lo <= e.cidr.last;
    if (e.cidr.first !== 0n) {
      out.push(e);
      if (holdsLoopback) out.push(Object.freeze({ ...e, cidr: cidrsOfRange(e.cidr.family, 0n, 0n)[0]! }));
    } else if (holdsLoopback) out.push(e);
    else if (e.cidr.last > 0n) out.push(...cidrsOfRange(e.cidr.family, 1n, e.cidr.last).map((cidr) => Object.freeze({ ...e, cidr })));
  }
  return out;
}

/** What the kernel does with a connect or sendmsg, given the share (a model of the eBPF lookup). */
export function kernelVerdict(entries: readonly KernelEntry[], proto: Proto, address: IpAddress, port: number): KernelVerdict {
  for (const e of entries) {
    if (e.proto === proto && port >= e.portLo && port <= e.portHi && cidrContains(e.cidr, address)) return { verdict: e.action, rule: e.rule };
  }
  return proto === "udp" ? { verdict: "deny", rule: null } : { verdict: "redirect" };
}
