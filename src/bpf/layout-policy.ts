/**
 * Keys and values of tg_policy4 and tg_policy6 (bpf/tidegate.h): LPM keys made of the cgroup id
 * and an address prefix, and the port rules stored under each prefix.
 */
import { familyBits, formatIp, ipFromBytes, type Cidr, type IpAddress } from "../policy/address.ts";
import { bad, LE, putAddr, u64, uint, view } from "./layout-codec.ts";
import { LAYOUT, TG_MAX_PORT_RULES, type TgAction, type TgProto } from "./layout-table.ts";


/** An LPM key: the cgroup (always matched in full) and an address prefix of `prefixLen` bits. */
export interface PolicyKey {
  readonly cgroupId: bigint;
  readonly address: IpAddress;
  readonly prefixLen: number;
}

/** The key of `cidr` for `cgroupId`. */
export function policyKeyOf(cgroupId: bigint, cidr: Cidr): PolicyKey {
  return { cgroupId, prefixLen: cidr.prefix, address: Object.freeze({ family: cidr.family, value: cidr.first, text: formatIp(cidr.family, cidr.first) }) };
}

/** tg_policy4_key (16 bytes) or tg_policy6_key (28), by the address's family; host bits past the prefix are cleared. */
export function encodePolicyKey(k: PolicyKey): Uint8Array {
  const op = "encodePolicyKey";
  const bits = familyBits(k.address.family);
  uint(op, "prefix length", k.prefixLen, bits);
  const id = u64(op, "cgroup id", k.cgroupId);
  const struct = k.address.family === 4 ? LAYOUT.tg_policy4_key : LAYOUT.tg_policy6_key;
  const out = new Uint8Array(struct.size);
  const v = new DataView(out.buffer);
  v.setUint32(struct.members.prefixlen.offset, 64 + k.prefixLen, LE);
  v.setUint32(struct.members.cgroup_hi.offset, Number(id >> 32n), LE);
  v.setUint32(struct.members.cgroup_lo.offset, Number(id & 0xffffffffn), LE);
  const host = (1n << BigInt(bits - k.prefixLen)) - 1n;
  putAddr(out, struct.members.addr.offset, Object.freeze({ ...k.address, value: k.address.value & ~host }));
  return out;
}

export function decodePolicyKey(bytes: Uint8Array): PolicyKey {
  const op = "decodePolicyKey";
  const struct = bytes.length === LAYOUT.tg_policy4_key.size ? LAYOUT.tg_policy4_key : LAYOUT.tg_policy6_key;
  const family = struct === LAYOUT.tg_policy4_key ? 4 : 6;
  const v = view(bytes, family === 4 ? "tg_policy4_key" : "tg_policy6_key", op);
  const prefixLen = v.getUint32(struct.members.prefixlen.offset, LE) - 64;
  if (prefixLen < 0 || prefixLen > familyBits(family)) throw bad(op, `prefixlen ${prefixLen + 64} out of 64..${64 + familyBits(family)}`);
  const cgroupId = (BigInt(v.getUint32(struct.members.cgroup_hi.offset, LE)) << 32n) | BigInt(v.getUint32(struct.members.cgroup_lo.offset, LE));
  const raw = bytes.slice(struct.members.addr.offset, struct.members.addr.offset + struct.members.addr.size);
  const address = ipFromBytes(raw);
  // ipFromBytes reads a 16-byte ::ffff:a.b.c.d as IPv4; a policy6 key keeps it as it was stored.
  const exact = address.family === family ? address : Object.freeze({ family: 6 as const, value: bytesToBig(raw), text: formatIp(6, bytesToBig(raw)) });
  return Object.freeze({ cgroupId, prefixLen, address: exact });
}

function bytesToBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}


export interface PortRule {
  readonly portLo: number;
  readonly portHi: number;
  readonly proto: TgProto;
  readonly action: TgAction;
  /** Index of the egress rule in the loaded policy, or TG_RULE_NONE. */
  readonly ruleId: number;
}

/** tg_policy_value (136 bytes): at most TG_MAX_PORT_RULES rules, flags 0. */
export function encodePolicyValue(rules: readonly PortRule[]): Uint8Array {
  const op = "encodePolicyValue";
  if (rules.length > TG_MAX_PORT_RULES) throw bad(op, `${rules.length} port rules, at most ${TG_MAX_PORT_RULES} fit one entry`);
  const s = LAYOUT.tg_policy_value;
  const r = LAYOUT.tg_port_rule;
  const out = new Uint8Array(s.size);
  const v = new DataView(out.buffer);
  v.setUint32(s.members.count.offset, rules.length, LE);
  rules.forEach((rule, i) => {
    const at = s.members.rules.offset + i * r.size;
    const lo = uint(op, "port_lo", rule.portLo, 0xffff);
    const hi = uint(op, "port_hi", rule.portHi, 0xffff);
    if (lo > hi) throw bad(op, `port range ${lo}-${hi} is empty`);
    if (rule.proto !== 6 && rule.proto !== 17) throw bad(op, `protocol ${String(rule.proto)}, want 6 (tcp) or 17 (udp)`);
    if (rule.action !== 1 && rule.action !== 2) throw bad(op, `action ${String(rule.action)}, want 1 (deny) or 2 (direct)`);
    v.setUint16(at + r.members.port_lo.offset, lo, LE);
    v.setUint16(at + r.members.port_hi.offset, hi, LE);
    v.setUint8(at + r.members.proto.offset, rule.proto);
    v.setUint8(at + r.members.action.offset, rule.action);
    v.setUint16(at + r.members.rule_id.offset, uint(op, "rule id", rule.ruleId, 0xffff), LE);
  });
  return out;
}

/** The used rules of a tg_policy_value (count capped at TG_MAX_PORT_RULES, as the programs do). */
export function decodePolicyValue(bytes: Uint8Array): PortRule[] {
  const s = LAYOUT.tg_policy_value;
  const r = LAYOUT.tg_port_rule;
  const v = view(bytes, "tg_policy_value", "decodePolicyValue");
  const count = Math.min(v.getUint32(s.members.count.offset, LE), TG_MAX_PORT_RULES);
  return Array.from({ length: count }, (_, i) => {
    const at = s.members.rules.offset + i * r.size;
    return Object.freeze({
      portLo: v.getUint16(at + r.members.port_lo.offset, LE),
      portHi: v.getUint16(at + r.members.port_hi.offset, LE),
      proto: v.getUint8(at + r.members.proto.offset) as TgProto,
      action: v.getUint8(at + r.members.action.offset) as TgAction,
      ruleId: v.getUint16(at + r.members.rule_id.offset, LE),
    });
  });
}
