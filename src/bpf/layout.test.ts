import { describe, expect, test } from "bun:test";
import { parseCidr, parseIp } from "../policy/address.ts";
import { BpfError } from "./errors.ts";
import {
  COUNTER_NAMES,
  decodeEvent,
  decodePolicyKey,
  decodePolicyValue,
  decodeRecord,
  decodeSettings,
  encodePolicyKey,
  encodePolicyValue,
  encodeSettings,
  ENUMS,
  LAYOUT,
  policyKeyOf,
  readCounters,
  sumPerCpu,
  TG_MAX_PORT_RULES,
  TG_RULE_NONE,
  u32Key,
  u64Key,
  type PortRule,
} from "./layout.ts";
import { errorOf } from "../../test/shim.ts";

// Expected bytes are written out by hand from bpf/tidegate.h (little-endian host), not from LAYOUT.
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));

function layoutError(fn: () => unknown, text: string): void {
  const e = errorOf(fn, BpfError);
  expect(e.code).toBe("bpf_layout");
  expect(e.errno).toBe(0);
  expect(e.message).toStartWith("bpf: ");
  expect(e.message).toContain(text);
}

describe("policy keys", () => {
  test("an IPv4 key: prefixlen 64 + prefix, cgroup id split hi/lo in host order, address in network order", () => {
    const k = encodePolicyKey({ cgroupId: 0x1_0000_0002n, address: parseIp("10.1.2.3"), prefixLen: 24 });
    expect(hex(k)).toBe(hex(bytes("58000000 01000000 02000000 0a010200")));
  });

  test("an IPv6 key is 28 bytes", () => {
    const k = encodePolicyKey({ cgroupId: 7n, address: parseIp("2001:db8::1"), prefixLen: 128 });
    expect(hex(k)).toBe(hex(bytes("c0000000 00000000 07000000 20010db8000000000000000000000001")));
  });

  test("the /0 of a cgroup is prefixlen 64 with a zero address", () => {
    expect(hex(encodePolicyKey({ cgroupId: 5n, address: parseIp("1.2.3.4"), prefixLen: 0 }))).toBe(hex(bytes("40000000 00000000 05000000 00000000")));
    expect(encodePolicyKey({ cgroupId: 5n, address: parseIp("::"), prefixLen: 0 }).length).toBe(28);
  });

  test("policyKeyOf a cidr, and decode gives the key back", () => {
    const cases = ["10.0.0.0/8", "192.168.1.128/25", "0.0.0.0/0", "2001:db8::/32", "::/0", "fe80::1/128", "255.255.255.255/32"];
    for (const text of cases) {
      const cidr = parseCidr(text);
      const key = policyKeyOf(0xffff_ffff_ffff_fffen, cidr);
      const back = decodePolicyKey(encodePolicyKey(key));
      expect(back.cgroupId).toBe(0xffff_ffff_ffff_fffen);
      expect(back.prefixLen).toBe(cidr.prefix);
      expect(`${back.address.text}/${back.prefixLen}`).toBe(cidr.text);
    }
  });

  test("a v6 key whose bytes look IPv4-mapped decodes as IPv6", () => {
    const k = decodePolicyKey(bytes("a0000000 00000000 01000000 00000000000000000000ffff0a000000"));
    expect(k.address.family).toBe(6);
    expect(k.prefixLen).toBe(96);
    expect(k.address.text).toBe("::ffff:a00:0");
  });

  test("refused: prefix longer than the address, negative, not an integer; cgroup ids beyond 64 bits; wrong sizes", () => {
    layoutError(() => encodePolicyKey({ cgroupId: 1n, address: parseIp("1.2.3.4"), prefixLen: 33 }), "prefix length 33");
    layoutError(() => encodePolicyKey({ cgroupId: 1n, address: parseIp("::1"), prefixLen: 129 }), "prefix length 129");
    layoutError(() => encodePolicyKey({ cgroupId: 1n, address: parseIp("::1"), prefixLen: -1 }), "prefix length -1");
    layoutError(() => encodePolicyKey({ cgroupId: 1n, address: parseIp("::1"), prefixLen: 1.5 }), "prefix length 1.5");
    layoutError(() => encodePolicyKey({ cgroupId: -1n, address: parseIp("::1"), prefixLen: 1 }), "cgroup id -1");
    layoutError(() => encodePolicyKey({ cgroupId: 1n << 64n, address: parseIp("::1"), prefixLen: 1 }), "does not fit 64 bits");
    layoutError(() => decodePolicyKey(new Uint8Array(20)), "20 bytes, want 28");
    layoutError(() => decodePolicyKey(bytes("21000000 00000000 01000000 0a000000")), "prefixlen 33 out of 64..96");
  });
});

describe("policy values", () => {
  const deny443: PortRule = { portLo: 443, portHi: 443, proto: 6, action: 1, ruleId: 3 };

  test("one rule: count, flags 0, then port_lo, port_hi, proto, action, rule_id; the rest zero", () => {
    const v = encodePolicyValue([deny443, { portLo: 53, portHi: 54, proto: 17, action: 2, ruleId: TG_RULE_NONE }]);
    expect(v.length).toBe(136);
    expect(hex(v.subarray(0, 24))).toBe(hex(bytes("02000000 00000000 bb01bb01 0601 0300 35003600 1102 ffff")));
    expect(v.subarray(24).every((b) => b === 0)).toBe(true);
  });

  test("an empty value (a managed cgroup with no rules) is count 0", () => {
    expect(encodePolicyValue([]).every((b) => b === 0)).toBe(true);
    expect(decodePolicyValue(encodePolicyValue([]))).toEqual([]);
  });

  test(`up to ${TG_MAX_PORT_RULES} rules round-trip; one more is refused`, () => {
    const rules: PortRule[] = Array.from({ length: TG_MAX_PORT_RULES }, (_, i) => ({ portLo: i, portHi: 1000 + i, proto: i % 2 ? 6 : 17, action: i % 3 ? 1 : 2, ruleId: i }));
    expect(decodePolicyValue(encodePolicyValue(rules))).toEqual(rules);
    layoutError(() => encodePolicyValue([...rules, deny443]), "17 port rules, at most 16");
  });

  test("refused: empty port ranges, ports out of range, unknown protocols and actions, rule ids past 16 bits", () => {
    layoutError(() => encodePolicyValue([{ ...deny443, portLo: 444 }]), "port range 444-443 is empty");
    layoutError(() => encodePolicyValue([{ ...deny443, portHi: 65536 }]), "port_hi 65536");
    layoutError(() => encodePolicyValue([{ ...deny443, portLo: -1 }]), "port_lo -1");
    layoutError(() => encodePolicyValue([{ ...deny443, proto: 1 as 6 }]), "protocol 1");
    layoutError(() => encodePolicyValue([{ ...deny443, action: 3 as 1 }]), "action 3");
    layoutError(() => encodePolicyValue([{ ...deny443, ruleId: 0x10000 }]), "rule id 65536");
  });

  test("a count above the maximum is capped when read, as the programs cap it", () => {
    const v = encodePolicyValue(Array.from({ length: TG_MAX_PORT_RULES }, () => deny443));
    v[0] = 200;
    expect(decodePolicyValue(v).length).toBe(TG_MAX_PORT_RULES);
    layoutError(() => decodePolicyValue(new Uint8Array(135)), "135 bytes, want 136 (struct tg_policy_value)");
  });
});

describe("records and events", () => {
  test("decodeRecord reads every field at the header's offsets", () => {
    const raw = bytes(
      "7f000001 00000000 00000000 00000000" + "bb01 04 06" + "e8030000 e9030000 f4010000 f5010000 00000000" +
        "0807060504030201" + "1100000000000000" + "0010000000000000" + "00e1f50500000000",
    );
    expect(raw.length).toBe(72);
    const r = decodeRecord(raw);
    expect(r.address.text).toBe("127.0.0.1");
    expect([r.port, r.proto, r.pid, r.tgid, r.uid, r.gid]).toEqual([443, 6, 1000, 1001, 500, 501]);
    expect(r.cgroupId).toBe(0x0102030405060708n);
    expect(r.cookie).toBe(17n);
    expect(r.timeNs).toBe(4096n);
    expect(r.startNs).toBe(100_000_000n);
    const v6 = raw.slice();
    v6.set(bytes("20010db8000000000000000000000042"), 0);
    v6[18] = 6;
    expect(decodeRecord(v6).address.text).toBe("2001:db8::42");
    v6[18] = 5;
    layoutError(() => decodeRecord(v6), "address family 5");
    layoutError(() => decodeRecord(new Uint8Array(71)), "71 bytes, want 72");
    layoutError(() => decodeRecord(new Uint8Array(64)), "64 bytes, want 72"); // a layout-4 record
  });

  test("decodeEvent reads every field; TG_RULE_NONE is null", () => {
    const raw = bytes(
      "0100000000000000" + "0200000000000000" + "03000000 04000000 05000000 06000000" + "0affff01 00000000 00000000 00000000" + "0900 0700 04 06 01 01",
    );
    expect(raw.length).toBe(56);
    const e = decodeEvent(raw);
    expect([e.timeNs, e.cgroupId]).toEqual([1n, 2n]);
    expect([e.pid, e.tgid, e.uid, e.gid]).toEqual([3, 4, 5, 6]);
    expect([e.address.text, e.port, e.ruleId, e.proto, e.reason, e.hook]).toEqual(["10.255.255.1", 9, 7, 6, 1, 1]);
    raw.set([0xff, 0xff], 50);
    expect(decodeEvent(raw).ruleId).toBeNull();
    raw[52] = 0;
    layoutError(() => decodeEvent(raw), "address family 0");
    layoutError(() => decodeEvent(new Uint8Array(64)), "64 bytes, want 56 (struct tg_event)");
  });
});

describe("settings and counters", () => {
  test("encodeSettings writes the layout version, the port in host order, both proxies in network order and the bound on open sockets", () => {
    const s = encodeSettings({ proxyPort: 15001, proxy4: parseIp("127.0.0.1"), proxy6: parseIp("::1"), maxOpen: 1024 });
    expect(hex(s)).toBe(hex(bytes("06000000 993a 0000 7f000001 00000000000000000000000000000001 00040000")));
    expect(decodeSettings(s)).toEqual({ layoutVersion: 6, proxyPort: 15001, proxy4: parseIp("127.0.0.1"), proxy6: parseIp("::1"), maxOpen: 1024 });
  });

  test("no proxy: zeros, read back as null", () => {
    const s = encodeSettings({ proxyPort: 0, proxy4: null, proxy6: null, layoutVersion: 9, maxOpen: 0 });
    expect(decodeSettings(s)).toEqual({ layoutVersion: 9, proxyPort: 0, proxy4: null, proxy6: null, maxOpen: 0 });
  });

  test("refused: a proxy of the wrong family, a port past 16 bits, a bound past 32 bits or negative, a settings buffer of the wrong size", () => {
    layoutError(() => encodeSettings({ proxyPort: 1, proxy4: parseIp("::1"), proxy6: null, maxOpen: 1 }), "proxy4 ::1 is not IPv4");
    layoutError(() => encodeSettings({ proxyPort: 1, proxy4: null, proxy6: parseIp("127.0.0.1"), maxOpen: 1 }), "proxy6 127.0.0.1 is not IPv6");
    layoutError(() => encodeSettings({ proxyPort: 70000, proxy4: null, proxy6: null, maxOpen: 1 }), "proxy port 70000");
    layoutError(() => encodeSettings({ proxyPort: 1, proxy4: null, proxy6: null, maxOpen: 2 ** 32 }), "max open 4294967296");
    layoutError(() => encodeSettings({ proxyPort: 1, proxy4: null, proxy6: null, maxOpen: -1 }), "max open -1");
    layoutError(() => decodeSettings(new Uint8Array(28)), "28 bytes, want 32");
  });

  test("per-CPU counters are summed; every counter is read by its index", () => {
    const u64 = (n: bigint) => u64Key(n);
    expect(sumPerCpu([u64(1n), u64(2n), u64(0xffff_ffffn)])).toBe(0x1_0000_0002n);
    expect(sumPerCpu([])).toBe(0n);
    layoutError(() => sumPerCpu([new Uint8Array(4)]), "4 bytes, want 8");
    const seen: number[] = [];
    const counters = readCounters((key) => {
      const i = new DataView(key.buffer).getUint32(0, true);
      seen.push(i);
      return [u64(BigInt(i)), u64(10n)];
    });
    expect(seen).toEqual([...COUNTER_NAMES.keys()]);
    expect(counters.connect).toBe(10n);
    expect(counters.event_drop).toBe(17n);
    expect(COUNTER_NAMES.length).toBe(ENUMS.tg_counter.TG_CNT__MAX);
  });

  test("u32 and u64 keys in host order; out of range refused", () => {
    expect(hex(u32Key(0x01020304))).toBe("04030201");
    expect(hex(u64Key(0x0102030405060708n))).toBe("0807060504030201");
    layoutError(() => u32Key(-1), "key -1");
    layoutError(() => u64Key(1n << 64n), "does not fit 64 bits");
  });

  test("every struct's members lie inside it, in order, without overlap", () => {
    for (const [name, s] of Object.entries(LAYOUT)) {
      let end = 0;
      for (const [member, m] of Object.entries(s.members) as [string, { offset: number; size: number }][]) {
        expect({ name, member, ok: m.offset >= end }).toEqual({ name, member, ok: true });
        end = m.offset + m.size;
      }
      expect({ name, end }).toEqual({ name, end: s.size });
    }
  });
});
