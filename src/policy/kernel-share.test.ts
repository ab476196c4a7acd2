// The kernel's share (kernel-share.ts): which deny and direct ranges the kernel applies alone,
// which go to the proxy because an earlier rule could match, and UDP cut exactly.
import { describe, test, assert } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { parseIp } from "./address.ts";
import { kernelShare, kernelVerdict } from "./kernel-share.ts";
import { loadPolicy } from "./load.ts";

const A = SpiffeId.parse("spiffe://example.org/a");
const B = SpiffeId.parse("spiffe://example.org/b");

function share(rules: string, id = A) {
  const p = loadPolicy(`trust_domain: example.org\negress:\n${rules}`, "k.yaml");
  return kernelShare(p, id).map((e) => `${e.proto} ${e.cidr.text} ${e.portLo}-${e.portHi} ${e.action} ${e.rule}`);
}

const rule = (name: string, to: string, action: string, from = "spiffe://example.org/a", extra = "") =>
  `  - name: ${name}\n    from: ${from}\n    to: ${to}\n    action: ${action}\n${extra}`;

describe("kernel share: TCP", () => {
  test("a deny range with nothing before it goes to the kernel", () => {
    assert.deepEqual(share(rule("d", "{ cidr: 10.0.0.0/8, port: any }", "deny")), ["tcp 10.0.0.0/8 1-65535 deny d"]);
  });
  test("an earlier host rule on an overlapping port keeps a later deny out (host rules match every address)", () => {
    const r = rule("h", "{ host: a.test, port: 443 }", "passthrough") + rule("d", "{ cidr: 10.0.0.0/8, port: 400-500 }", "deny");
    assert.deepEqual(share(r), []);
  });
  test("an earlier host rule on another port does not", () => {
    const r = rule("h", "{ host: a.test, port: 443 }", "passthrough") + rule("d", "{ cidr: 10.0.0.0/8, port: 22 }", "deny");
    assert.deepEqual(share(r), ["tcp 10.0.0.0/8 22-22 deny d"]);
  });
  test("an earlier overlapping range keeps it out; a disjoint one does not", () => {
    const r = rule("p", "{ cidr: 10.1.0.0/16, port: any }", "passthrough") + rule("d", "{ cidr: 10.0.0.0/8, port: any }", "deny") + rule("e", "{ cidr: 192.168.0.0/16, port: any }", "direct");
    assert.deepEqual(share(r), ["tcp 192.168.0.0/16 1-65535 direct e"]);
  });
  test("another family never overlaps", () => {
    const r = rule("p", "{ cidr: '::/0', port: any }", "passthrough") + rule("d", "{ cidr: 0.0.0.0/0, port: any }", "deny");
    assert.deepEqual(share(r), ["tcp 0.0.0.0/0 1-65535 deny d"]);
  });
  test("a UDP rule before does not keep a TCP deny out", () => {
    const r = rule("u", "{ cidr: 10.0.0.0/8, port: any, proto: udp }", "direct") + rule("d", "{ cidr: 10.0.0.0/8, port: any }", "deny");
    assert.deepEqual(share(r), ["udp 10.0.0.0/8 1-65535 direct u", "tcp 10.0.0.0/8 1-65535 deny d"]);
  });
  test("a deny with http conditions needs the proxy", () => {
    assert.deepEqual(share(rule("d", "{ cidr: 10.0.0.0/8, port: 80 }", "deny", undefined, "    http: { methods: [DELETE] }\n")), []);
  });
  test("rules of other callers neither enter nor shadow", () => {
    const r = rule("hb", "{ host: a.test, port: any }", "passthrough", "spiffe://example.org/b") + rule("d", "{ cidr: 10.0.0.0/8, port: any }", "deny");
    assert.deepEqual(share(r, A), ["tcp 10.0.0.0/8 1-65535 deny d"]);
    assert.deepEqual(share(r, B), []);
  });
  test("passthrough, tls and intercept ranges are never in the kernel", () => {
    assert.deepEqual(share(rule("p", "{ cidr: 10.0.0.0/8, port: any }", "passthrough") + rule("t", "{ cidr: 11.0.0.0/8, port: any }", "tls")), []);
  });
});

describe("kernel share: UDP is exact", () => {
  const r = rule("d", "{ cidr: 10.0.0.0/24, port: 53, proto: udp }", "deny") + rule("ok", "{ cidr: 10.0.0.0/16, port: 50-60, proto: udp }", "direct");
  test("a later rule keeps what earlier ones did not decide, in CIDR blocks and port pieces", () => {
    assert.deepEqual(share(r), [
      "udp 10.0.0.0/24 53-53 deny d",
      "udp 10.0.1.0/24 50-60 direct ok",
      "udp 10.0.2.0/23 50-60 direct ok",
      "udp 10.0.4.0/22 50-60 direct ok",
      "udp 10.0.8.0/21 50-60 direct ok",
      "udp 10.0.16.0/20 50-60 direct ok",
      "udp 10.0.32.0/19 50-60 direct ok",
      "udp 10.0.64.0/18 50-60 direct ok",
      "udp 10.0.128.0/17 50-60 direct ok",
      "udp 10.0.0.0/24 50-52 direct ok",
      "udp 10.0.0.0/24 54-60 direct ok",
    ]);
  });
  test("the kernel's verdicts follow the order", () => {
    const p = loadPolicy(`trust_domain: example.org\negress:\n${r}`, "k.yaml");
    const entries = kernelShare(p, A);
    const at = (addr: string, port: number) => kernelVerdict(entries, "udp", parseIp(addr), port);
    assert.deepEqual(at("10.0.0.9", 53), { verdict: "deny", rule: "d" });
    assert.deepEqual(at("10.0.0.9", 54), { verdict: "direct", rule: "ok" });
    assert.deepEqual(at("10.0.200.1", 53), { verdict: "direct", rule: "ok" });
    assert.deepEqual(at("10.1.0.1", 53), { verdict: "deny", rule: null }, "UDP no rule names: denied");
    assert.deepEqual(kernelVerdict(entries, "tcp", parseIp("10.0.0.9"), 53), { verdict: "redirect" }, "TCP no entry names: to the proxy");
  });
  test("a rule wholly covered by earlier ones leaves nothing", () => {
    assert.deepEqual(share(rule("a", "{ cidr: 10.0.0.0/8, port: any, proto: udp }", "deny") + rule("b", "{ cidr: 10.1.0.0/16, port: 53, proto: udp }", "direct")), [
      "udp 10.0.0.0/8 1-65535 deny a",
    ]);
  });
});

describe("kernel share: the unspecified address is decided as the loopback it reaches", () => {
  const at = (rules: string, proto: "tcp" | "udp", addr: string, port: number) => {
    const p = loadPolicy(`trust_domain: example.org\negress:\n${rules}`, "k.yaml");
    return kernelVerdict(kernelShare(p, A), proto, parseIp(addr), port);
  };
  test("a direct range holding 0.0.0.0 but not 127.0.0.1 does not pass 0.0.0.0: the proxy decides it", () => {
    const r = rule("zero", "{ cidr: 0.0.0.0/8, port: any }", "direct");
    assert.deepEqual(at(r, "tcp", "0.0.0.0", 8080), { verdict: "redirect" });
    assert.deepEqual(at(r, "tcp", "0.0.0.1", 8080), { verdict: "direct", rule: "zero" });
    const entries = share(r);
    assert.equal(entries.length, 24, "0.0.0.1-0.255.255.255 in CIDR blocks");
    assert.deepEqual([entries[0], entries.at(-1)], ["tcp 0.0.0.1/32 1-65535 direct zero", "tcp 0.128.0.0/9 1-65535 direct zero"]);
  });
  test("0.0.0.0 and :: get the loopback's entry: its deny, or its direct, on its ports", () => {
    const rules = rule("no-lo", "{ cidr: 127.0.0.0/8, port: any }", "deny") + rule("lo6", "{ cidr: \"::1/128\", port: 5432 }", "direct") + rule("zero", "{ cidr: 0.0.0.0/8, port: any }", "direct");
    assert.deepEqual(at(rules, "tcp", "0.0.0.0", 8080), { verdict: "deny", rule: "no-lo" });
    assert.deepEqual(at(rules, "tcp", "::", 5432), { verdict: "direct", rule: "lo6" });
    assert.deepEqual(at(rules, "tcp", "::", 5433), { verdict: "redirect" });
    assert.deepEqual(at(rules, "tcp", "::ffff:0.0.0.0", 8080), { verdict: "deny", rule: "no-lo" });
  });
  test("UDP: 0.0.0.0 is denied unless the loopback's port is allowed", () => {
    const rules = rule("dns-lo", "{ cidr: 127.0.0.0/8, port: 53, proto: udp }", "direct") + rule("zero", "{ cidr: 0.0.0.0/8, port: any, proto: udp }", "direct");
    assert.deepEqual(at(rules, "udp", "0.0.0.0", 53), { verdict: "direct", rule: "dns-lo" });
    assert.deepEqual(at(rules, "udp", "0.0.0.0", 54), { verdict: "deny", rule: null });
    assert.deepEqual(at(rules, "udp", "0.0.0.1", 54), { verdict: "direct", rule: "zero" });
  });
  test("a range that holds both (0.0.0.0/0, ::/0) stays one entry", () => {
    assert.deepEqual(share(rule("all", "{ cidr: 0.0.0.0/0, port: any }", "deny") + rule("all6", "{ cidr: \"::/0\", port: any }", "direct")), ["tcp 0.0.0.0/0 1-65535 deny all", "tcp ::/0 1-65535 direct all6"]);
  });
});

