// A failed reload keeps the last good policy and its engine, and says why.
import { describe, test, assert } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { parseIp } from "./address.ts";
import { PolicyHolder } from "./holder.ts";

const GOOD = "trust_domain: example.org\negress:\n  - { name: a, from: spiffe://example.org/a, to: { cidr: 10.0.0.0/8, port: 80 }, action: passthrough }\n";
const BETTER = GOOD.replace("port: 80", "port: 81");
const query = (port: number) => ({ from: SpiffeId.parse("spiffe://example.org/a"), proto: "tcp" as const, port, address: parseIp("10.1.1.1"), name: null });

describe("policy holder: reload", () => {
  test("before any good load there is no policy and no engine", () => {
    const h = new PolicyHolder();
    const r = h.reload("trust_domain: [", "p.yaml");
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.kept, null);
    assert.equal(h.policy, null);
    assert.equal(h.engine, null);
  });
  test("a good reload swaps policy and engine together", () => {
    const h = new PolicyHolder();
    assert.equal(h.reload(GOOD, "p.yaml").ok, true);
    assert.equal(h.engine!.decide(query(80)).verdict, "allow");
    assert.equal(h.reload(BETTER, "p.yaml").ok, true);
    assert.equal(h.engine!.decide(query(80)).verdict, "deny");
    assert.equal(h.engine!.decide(query(81)).verdict, "allow");
    assert.equal(h.engine!.policy, h.policy);
  });
  test("a rejected reload keeps the last good policy and names the problem", () => {
    const h = new PolicyHolder();
    h.reload(GOOD, "p.yaml");
    const before = h.policy;
    const r = h.reload(GOOD.replace("passthrough", "passthru"), "p.yaml");
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.error.code === "policy_invalid" && r.error.message.startsWith("policy: p.yaml:3: egress[0].action:"));
    assert.equal(!r.ok && r.kept, before);
    assert.equal(h.policy, before);
    assert.equal(h.engine!.decide(query(80)).verdict, "allow");
  });
});
