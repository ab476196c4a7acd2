// Where bytes go (destination.ts): a host rule admits only the addresses its name resolves to.
import { describe, test, assert, rejectionCode } from "../../test/shim.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { parseIp, type IpAddress } from "./address.ts";
import { admit, admitNow, addressesFor } from "./destination.ts";
import { PolicyEngine } from "./engine.ts";
import { PolicyError } from "./errors.ts";
import { loadPolicy } from "./load.ts";
import type { Query } from "./query.ts";

const policy = loadPolicy(
  `trust_domain: example.org
egress:
  - { name: api, from: spiffe://example.org/a, to: { host: api.test, port: 443 }, action: tls }
  - { name: net, from: spiffe://example.org/a, to: { cidr: 10.0.0.0/8, port: 80 }, action: passthrough, upstream: { port: 8080 } }
`,
  "d.yaml",
);
const engine = new PolicyEngine(policy);
const A = SpiffeId.parse("spiffe://example.org/a");
const names = (answers: Record<string, string[]>) => ({
  asked: [] as string[],
  async resolve(name: string): Promise<readonly IpAddress[]> {
    this.asked.push(name);
    const a = answers[name];
    if (a === undefined) throw new PolicyError("policy_dns_failed", `dns: ${name}: no answer`);
    return a.map(parseIp);
  },
});
const q = (name: string | null, addr: string, port: number): Query => ({ from: A, proto: "tcp", port, address: parseIp(addr), name });

describe("destination: where bytes go", () => {
  test("a host rule admits an original address its name resolves to, and says where to connect", async () => {
    const query = q("api.test", "192.0.2.7", 443);
    const r = await admit(engine.decide(query), query, names({ "api.test": ["192.0.2.1", "192.0.2.7"] }));
    assert.equal(r.decision.verdict, "allow");
    assert.deepEqual(r.upstream && [r.upstream.address.text, r.upstream.port, r.upstream.serverName], ["192.0.2.7", 443, "api.test"]);
  });
  test("an allowed name paired with another address is refused", async () => {
    const query = q("api.test", "198.51.100.9", 443);
    const r = await admit(engine.decide(query), query, names({ "api.test": ["192.0.2.1"] }));
    assert.deepEqual([r.decision.verdict, r.decision.verdict === "deny" && r.decision.reason, r.decision.rule?.name, r.upstream], ["deny", "address_not_resolved", "api", null]);
    assert.equal(r.upstream === null && r.detail, "api.test resolves to 192.0.2.1, not to 198.51.100.9");
  });
  test("the refusal's detail names at most four answers, and says when the name resolves to none", async () => {
    const query = q("api.test", "198.51.100.9", 443);
    const many = await admit(engine.decide(query), query, names({ "api.test": ["192.0.2.1", "192.0.2.2", "2001:db8::3", "192.0.2.4", "192.0.2.5", "192.0.2.6"] }));
    assert.equal(many.upstream === null && many.detail, "api.test resolves to 192.0.2.1, 192.0.2.2, 2001:db8::3, 192.0.2.4 and 2 more, not to 198.51.100.9");
    const none = await admit(engine.decide(query), query, names({ "api.test": [] }));
    assert.equal(none.upstream === null && none.detail, "api.test resolves to no address (dns: hosts and servers), not to 198.51.100.9");
    const deny = q("other.test", "198.51.100.9", 443);
    const r = await admit(engine.decide(deny), deny, names({}));
    assert.equal(r.upstream === null && r.detail, undefined); // a deny by the rules resolves nothing and says nothing of names
  });
  test("an IPv6 original address must be among the AAAA answers", async () => {
    const query = q("api.test", "2001:db8::7", 443);
    assert.equal((await admit(engine.decide(query), query, names({ "api.test": ["192.0.2.1", "2001:db8::7"] }))).decision.verdict, "allow");
    assert.equal((await admit(engine.decide(query), query, names({ "api.test": ["2001:db8::8"] }))).decision.verdict, "deny");
  });
  test("a name that does not resolve fails closed with policy_dns_failed", async () => {
    const query = q("api.test", "192.0.2.7", 443);
    assert.equal(await rejectionCode(admit(engine.decide(query), query, names({})), PolicyError), "policy_dns_failed");
  });
  test("a cidr rule admits the original address (it matched the range) without resolving, with upstream.port", async () => {
    const query = q(null, "10.1.2.3", 80);
    const resolver = names({});
    const r = await admit(engine.decide(query), query, resolver);
    assert.deepEqual(r.upstream && [r.upstream.address.text, r.upstream.port, r.upstream.serverName], ["10.1.2.3", 8080, null]);
    assert.deepEqual(resolver.asked, []);
  });
  test("a deny passes through unchanged and resolves nothing", async () => {
    const query = q("other.test", "192.0.2.7", 443);
    const resolver = names({});
    const r = await admit(engine.decide(query), query, resolver);
    assert.equal(r.decision.verdict, "deny");
    assert.deepEqual(await addressesFor(r.decision, query, resolver), []);
    assert.deepEqual(resolver.asked, []);
  });

  test("admitNow: what admit says, without a promise, when the cache holds the name, the rule is a cidr one or the decision a deny; null when a look-up is needed", async () => {
    const cache = (answers: Record<string, string[]>) => ({ peek: (name: string) => answers[name]?.map(parseIp) });
    const cases: [Query, Record<string, string[]>][] = [
      [q("api.test", "192.0.2.7", 443), { "api.test": ["192.0.2.1", "192.0.2.7"] }],
      [q("api.test", "198.51.100.9", 443), { "api.test": ["192.0.2.1"] }],
      [q("api.test", "2001:db8::7", 443), { "api.test": ["2001:db8::8"] }],
      [q(null, "10.1.2.3", 80), {}],
      [q("other.test", "192.0.2.7", 443), {}],
    ];
    for (const [query, answers] of cases) {
      const now = admitNow(engine.decide(query), query, cache(answers));
      assert.notEqual(now, null);
      assert.deepEqual(now, await admit(engine.decide(query), query, names(answers)));
    }
    const unknown = q("api.test", "192.0.2.7", 443);
    assert.equal(admitNow(engine.decide(unknown), unknown, cache({})), null);
  });
});
