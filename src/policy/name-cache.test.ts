import { assert, describe, rejectionCode, test } from "../../test/shim.ts";
import { parseIp, type IpAddress } from "./address.ts";
import { PolicyError } from "./errors.ts";
import { NameCache, type Lookup, type NameCacheOptions } from "./name-cache.ts";

type Answer = { addresses: readonly IpAddress[]; ttl: number };
type Script = Answer | Error | Promise<Answer>;

const ips = (...t: string[]) => t.map(parseIp);
const ok = (ttl: number, ...t: string[]): Answer => ({ addresses: ips(...t), ttl });
const texts = (a: readonly IpAddress[] | undefined) => a?.map((x) => x.text);

/** A fake resolver answering from a table keyed "name/A" or "name/AAAA" (missing: empty, ttl 30), with a clock. */
function setup(table: Record<string, Script>, opts: Partial<NameCacheOptions> = {}) {
  const calls: string[] = [];
  const clock = { ms: 1_000_000 };
  const lookup: Lookup = (name, type) => {
    const key = `${name}/${type}`;
    calls.push(key);
    const s = table[key] ?? ok(30);
    return s instanceof Error ? Promise.reject(s) : Promise.resolve(s);
  };
  const cache = new NameCache({ lookup, now: () => clock.ms, ...opts });
  const advance = (seconds: number) => (clock.ms += seconds * 1000);
  return { cache, calls, advance, table };
}

describe("NameCache", () => {
  test("the answer is A then AAAA, each address once", async () => {
    const { cache, calls } = setup({ "x.test/A": ok(60, "192.0.2.1", "192.0.2.2", "192.0.2.1"), "x.test/AAAA": ok(60, "2001:db8::1", "::ffff:192.0.2.2") });
    assert.deepEqual(texts(await cache.resolve("x.test")), ["192.0.2.1", "192.0.2.2", "2001:db8::1"]);
    assert.deepEqual(calls.sort(), ["x.test/A", "x.test/AAAA"]);
  });

  test("cached until the least TTL of the two answers runs out", async () => {
    const { cache, calls, advance } = setup({ "x.test/A": ok(300, "192.0.2.1"), "x.test/AAAA": ok(60, "2001:db8::1") });
    await cache.resolve("x.test");
    advance(59.999);
    assert.deepEqual(texts(cache.peek("x.test")), ["192.0.2.1", "2001:db8::1"]);
    await cache.resolve("x.test");
    assert.equal(calls.length, 2);
    advance(0.001);
    assert.equal(cache.peek("x.test"), undefined);
    await cache.resolve("x.test");
    assert.equal(calls.length, 4);
  });

  const clamps: [string, number, Partial<NameCacheOptions>, number][] = [
    ["a TTL of 0 lasts the 5 s floor", 0, {}, 5],
    ["a TTL below the floor is raised to it", 2, { minTtlSeconds: 3 }, 3],
    ["a day is cut to the 1 h ceiling", 86_400, {}, 3600],
    ["a ceiling of one's own", 700, { maxTtlSeconds: 600 }, 600],
    ["a TTL in range is kept", 1234, {}, 1234],
    ["a nonsense TTL lasts the floor", Number.NaN, {}, 5],
  ];
  for (const [name, ttl, opts, lasts] of clamps) {
    test(`clamp: ${name}`, async () => {
      const { cache, advance } = setup({ "x.test/A": ok(ttl, "192.0.2.1"), "x.test/AAAA": ok(ttl, "2001:db8::1") }, opts);
      await cache.resolve("x.test");
      advance(lasts - 0.001);
      assert.notEqual(cache.peek("x.test"), undefined);
      advance(0.001);
      assert.equal(cache.peek("x.test"), undefined);
    });
  }

  test("an empty answer resolves to [] and is cached at most the negative TTL", async () => {
    const { cache, calls, advance, table } = setup({ "gone.test/A": ok(900), "gone.test/AAAA": ok(900) });
    assert.deepEqual(await cache.resolve("gone.test"), []);
    advance(29.9);
    assert.deepEqual(cache.peek("gone.test"), []);
    advance(0.1);
    assert.equal(cache.peek("gone.test"), undefined);
    table["gone.test/A"] = ok(10);
    table["gone.test/AAAA"] = ok(10);
    await cache.resolve("gone.test");
    advance(10);
    assert.equal(cache.peek("gone.test"), undefined);
    assert.equal(calls.length, 4);
  });

  test("an empty family bounds the lifetime by the negative TTL", async () => {
    const { cache, advance } = setup({ "v4.test/A": ok(300, "192.0.2.1"), "v4.test/AAAA": ok(3000) }, { negativeTtlSeconds: 20 });
    await cache.resolve("v4.test");
    advance(19.999);
    assert.deepEqual(texts(cache.peek("v4.test")), ["192.0.2.1"]);
    advance(0.001);
    assert.equal(cache.peek("v4.test"), undefined);
  });

  test("five concurrent resolves share one lookup per family", async () => {
    let release: (a: Answer) => void = () => {};
    const slow = new Promise<Answer>((r) => (release = r));
    const { cache, calls } = setup({ "x.test/A": slow });
    const all = Promise.all([1, 2, 3, 4, 5].map(() => cache.resolve("x.test")));
    release(ok(60, "192.0.2.7"));
    const got = await all;
    assert.deepEqual(calls.sort(), ["x.test/A", "x.test/AAAA"]);
    for (const g of got) assert.equal(g, got[0]);
    assert.deepEqual(texts(got[0]), ["192.0.2.7"]);
  });

  test("a static entry wins: no lookup, whatever DNS would say", async () => {
    const hosts = new Map([["pinned.test", ips("10.1.2.3", "fd00::1")], ["empty.test", []]]);
    const { cache, calls } = setup({ "pinned.test/A": ok(60, "203.0.113.9") }, { hosts });
    assert.deepEqual(texts(await cache.resolve("pinned.test")), ["10.1.2.3", "fd00::1"]);
    assert.deepEqual(await cache.resolve("empty.test"), []);
    assert.deepEqual(texts(cache.peek("pinned.test")), ["10.1.2.3", "fd00::1"]);
    assert.deepEqual(calls, []);
  });

  test("both families failing is policy_dns_failed, not cached: the next resolve asks again", async () => {
    const { cache, calls, table } = setup({ "x.test/A": new Error("dns: timeout"), "x.test/AAAA": new Error("dns: servfail") });
    const e = await cache.resolve("x.test").catch((e: unknown) => e);
    assert.ok(e instanceof PolicyError);
    assert.equal(e.code, "policy_dns_failed");
    assert.equal(e.message, 'policy: cannot resolve "x.test": dns: timeout; dns: servfail');
    assert.equal(cache.peek("x.test"), undefined);
    table["x.test/A"] = ok(60, "192.0.2.1");
    table["x.test/AAAA"] = ok(60);
    assert.deepEqual(texts(await cache.resolve("x.test")), ["192.0.2.1"]);
    assert.equal(calls.length, 4);
  });

  test("an expired answer is never served when the lookup fails (fail closed)", async () => {
    const { cache, advance, table } = setup({ "x.test/A": ok(60, "192.0.2.1") });
    await cache.resolve("x.test");
    advance(61);
    table["x.test/A"] = new Error("dns: timeout");
    table["x.test/AAAA"] = new Error("dns: timeout");
    assert.equal(await rejectionCode(cache.resolve("x.test"), PolicyError), "policy_dns_failed");
    assert.equal(cache.peek("x.test"), undefined);
    assert.equal(await rejectionCode(cache.resolve("x.test"), PolicyError), "policy_dns_failed");
  });

  test("one family failing: the other's addresses, kept only the floor", async () => {
    const { cache, calls, advance } = setup({ "x.test/A": ok(3000, "192.0.2.1"), "x.test/AAAA": new Error("dns: timeout") });
    assert.deepEqual(texts(await cache.resolve("x.test")), ["192.0.2.1"]);
    advance(4.999);
    assert.notEqual(cache.peek("x.test"), undefined);
    advance(0.001);
    assert.equal(cache.peek("x.test"), undefined);
    assert.equal(calls.length, 2);
  });

  test("one family failing and the other empty is a failure, not an empty answer", async () => {
    const { cache } = setup({ "x.test/A": ok(300), "x.test/AAAA": new Error("dns: refused") });
    assert.equal(await rejectionCode(cache.resolve("x.test"), PolicyError), "policy_dns_failed");
    assert.equal(cache.peek("x.test"), undefined);
  });

  test("a lookup that throws instead of rejecting is a failure too", async () => {
    const cache = new NameCache({
      lookup: () => {
        throw new Error("boom");
      },
    });
    assert.equal(await rejectionCode(cache.resolve("x.test"), PolicyError), "policy_dns_failed");
  });

  test("at most maxEntries names, the least recently used dropped", async () => {
    const { cache, calls } = setup({ "a.test/A": ok(60, "192.0.2.1"), "b.test/A": ok(60, "192.0.2.2"), "c.test/A": ok(60, "192.0.2.3") }, { maxEntries: 2 });
    await cache.resolve("a.test");
    await cache.resolve("b.test");
    await cache.resolve("a.test");
    await cache.resolve("c.test");
    assert.equal(cache.peek("b.test"), undefined);
    assert.deepEqual(texts(cache.peek("a.test")), ["192.0.2.1"]);
    assert.deepEqual(texts(cache.peek("c.test")), ["192.0.2.3"]);
    assert.equal(calls.length, 6);
  });

  test("clear drops every answer, and one in flight is not stored", async () => {
    let release: (a: Answer) => void = () => {};
    const { cache, table } = setup({ "a.test/A": ok(60, "192.0.2.1") });
    await cache.resolve("a.test");
    table["b.test/A"] = new Promise<Answer>((r) => (release = r));
    const inflight = cache.resolve("b.test");
    cache.clear();
    assert.equal(cache.peek("a.test"), undefined);
    release(ok(60, "192.0.2.2"));
    assert.deepEqual(texts(await inflight), ["192.0.2.2"]);
    assert.equal(cache.peek("b.test"), undefined);
  });

  test("answers are frozen", async () => {
    const { cache } = setup({ "x.test/A": ok(60, "192.0.2.1") }, { hosts: new Map([["h.test", ips("10.0.0.1")]]) });
    assert.ok(Object.isFrozen(await cache.resolve("x.test")));
    assert.ok(Object.isFrozen(await cache.resolve("h.test")));
  });
});
