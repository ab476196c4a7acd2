// Federation (federation.ts) with an injected fetcher, a hand-moved clock and an in-memory
// datastore state: when it fetches, what it refuses, when a bundle stops being handed out, what
// survives a restart, and which bundle authenticates an https_spiffe endpoint.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { memoryLogger } from "../runtime/log.ts";
import { Bundle, formatJwksBundle, formatPemBundle, SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { encodePem, generateKeyPair, subtle } from "../x509/index.ts";
import { ServerConfigError, type FederationSetting } from "./config.ts";
import { FederationError, type BundleFetcher, type FetchTrust } from "./federation-fetch.ts";
import { Federation } from "./federation.ts";

const OWN = TrustDomain.parse("example.org");
const PARTNER = TrustDomain.parse("partner.test");
const OTHER = TrustDomain.parse("other.test");
const T0 = Date.parse("2030-01-01T00:00:00Z");
const STATE_KEY = "federation.bundle.partner.test";

let rootA: TestCa;
let rootB: TestCa;
let otherRoot: TestCa;
let dir: string;
let initialPem: string; // partner's initial bundle file: rootA as PEM

let clock: { now: number };
let log: ReturnType<typeof memoryLogger>;

beforeAll(async () => {
  [rootA, rootB, otherRoot] = await Promise.all([createTestCa({ trustDomain: "partner.test" }), createTestCa({ trustDomain: "partner.test" }), createTestCa({ trustDomain: "other.test" })]);
  dir = mkdtempSync(join(tmpdir(), "tidegate-federation-test-"));
  initialPem = join(dir, "partner.pem");
  writeFileSync(initialPem, encodePem("CERTIFICATE", rootA.root.der));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeEach(() => {
  clock = { now: T0 };
  log = memoryLogger();
});

function jwksOf(roots: readonly TestCa[], o: { sequence?: number; hint?: number; td?: TrustDomain } = {}): Promise<string> {
  return formatJwksBundle(Bundle.create(o.td ?? PARTNER, { x509Authorities: roots.map((r) => r.root.der), sequence: o.sequence, refreshHintSeconds: o.hint }));
}

function setting(o: Partial<FederationSetting> = {}): FederationSetting {
  return {
    trustDomain: PARTNER,
    bundleEndpoint: "https://partner.test/.well-known/spiffe-bundle",
    profile: "https_web",
    endpointId: null,
    bundleFile: null,
    caFile: null,
    maxAgeSeconds: 3600,
    defaultRefreshSeconds: 40,
    ...o,
  };
}

function spiffeSetting(o: Partial<FederationSetting> = {}): FederationSetting {
  return setting({ profile: "https_spiffe", endpointId: SpiffeId.parse("spiffe://partner.test/tidegate/server"), bundleFile: initialPem, ...o });
}

function memoryStore() {
  const map = new Map<string, string>();
  return { map, getState: async (k: string) => map.get(k) ?? null, setState: async (k: string, v: string) => void map.set(k, v) };
}

type Answer = string | Error | ((signal: AbortSignal) => Promise<string>);

interface Call {
  readonly setting: FederationSetting;
  readonly trust: FetchTrust;
  readonly signal: AbortSignal;
  readonly at: number;
}

/** A bundle endpoint stand-in: answers in turn (the last one again), every call recorded. */
function endpoint(...answers: Answer[]): { answers: Answer[]; calls: Call[]; fetcher: BundleFetcher } {
  const calls: Call[] = [];
  const self: { answers: Answer[]; calls: Call[]; fetcher: BundleFetcher } = {
    answers,
    calls,
    fetcher: (async (f, trust, signal) => {
      calls.push({ setting: f, trust, signal, at: clock.now });
      const a: Answer = self.answers.length > 1 ? self.answers.shift()! : self.answers[0]!;
      if (a instanceof Error) throw a;
      return typeof a === "function" ? a(signal) : a;
    }) as BundleFetcher,
  };
  return self;
}

const unreachable = () => new FederationError("federation_endpoint_unreachable", "federation: cannot reach partner.test's bundle endpoint: ECONNREFUSED");

function open(o: { settings?: FederationSetting[]; store?: ReturnType<typeof memoryStore>; fetcher?: BundleFetcher } = {}): Promise<Federation> {
  return Federation.open({ settings: o.settings ?? [setting()], ownTrustDomain: OWN, store: o.store ?? memoryStore(), logger: log, now: () => clock.now, ...(o.fetcher ? { fetcher: o.fetcher } : {}) });
}

const events = (name: string) => log.lines.filter((l) => l.event === name);
const at = (s: number) => T0 + s * 1000;

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; isConfig: boolean }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code?: string }).code ?? "", message: (e as Error).message, isConfig: e instanceof ServerConfigError };
  }
  throw new Error("expected a refusal");
}

describe("when it fetches", () => {
  test("first at once, then every half refresh hint; an unchanged bundle is not logged again", async () => {
    const ep = endpoint(await jwksOf([rootA], { sequence: 1, hint: 60 }));
    const fed = await open({ fetcher: ep.fetcher });
    expect(fed.served()).toEqual([]);
    expect(fed.status()[0]).toMatchObject({ state: "never_fetched", refreshed_at: null, next_fetch_at: new Date(T0).toISOString() });
    await fed.tick();
    expect(ep.calls.map((c) => c.at)).toEqual([T0]);
    expect(fed.served()).toMatchObject([{ trustDomain: "partner.test", sequence: 1, roots: 1, refreshedAt: T0, expiresAt: at(3600) }]);
    expect(fed.status()[0]).toMatchObject({ state: "current", refreshed_at: new Date(T0).toISOString(), expires_at: new Date(at(3600)).toISOString(), next_fetch_at: new Date(at(30)).toISOString(), failures: 0, last_error: null });
    clock.now = at(30) - 1;
    await fed.tick();
    expect(ep.calls).toHaveLength(1);
    clock.now = at(30);
    await fed.tick();
    expect(ep.calls.map((c) => c.at)).toEqual([T0, at(30)]);
    expect(fed.served()[0]!.expiresAt).toBe(at(30 + 3600));
    expect(events("federated_bundle_updated")).toHaveLength(1);
    expect(events("federated_bundle_updated")[0]).toMatchObject({ trust_domain: "partner.test", sequence: 1, roots: 1, refresh_hint_seconds: 60 });
  });

  test("a bundle without a refresh hint is fetched every half default_refresh", async () => {
    const ep = endpoint(await jwksOf([rootA]));
    const fed = await open({ settings: [setting({ defaultRefreshSeconds: 40 })], fetcher: ep.fetcher });
    await fed.tick();
    clock.now = at(20) - 1;
    await fed.tick();
    clock.now = at(20);
    await fed.tick();
    expect(ep.calls.map((c) => c.at)).toEqual([T0, at(20)]);
  });

  test("a tick while a fetch is in flight starts no second one", async () => {
    let release!: (s: string) => void;
    const text = await jwksOf([rootA]);
    const ep = endpoint(() => new Promise<string>((r) => (release = r)));
    const fed = await open({ fetcher: ep.fetcher });
    const first = fed.tick();
    await fed.tick();
    clock.now = at(100);
    await fed.tick();
    expect(ep.calls).toHaveLength(1);
    release(text);
    await first;
    expect(fed.served()).toHaveLength(1);
  });

  test("a failed fetch is retried after 1, 2, 4 s, never later than half the refresh hint", async () => {
    // the held bundle's hint is 10 s: retries are capped at 5 s; a success resets the count
    const ep = endpoint(await jwksOf([rootA], { hint: 10 }), unreachable(), unreachable(), unreachable(), unreachable(), unreachable(), await jwksOf([rootA], { hint: 10 }));
    const fed = await open({ fetcher: ep.fetcher });
    await fed.tick();
    const waits: number[] = [];
    clock.now = at(5);
    for (let i = 0; i < 5; i++) {
      await fed.tick();
      const next = Date.parse(fed.status()[0]!.next_fetch_at);
      waits.push(next - clock.now);
      clock.now = next - 1;
      await fed.tick(); // not due yet: no call
      clock.now = next;
    }
    expect(waits).toEqual([1000, 2000, 4000, 5000, 5000]);
    expect(ep.calls).toHaveLength(6);
    expect(fed.status()[0]).toMatchObject({ state: "current", failures: 5, last_error: unreachable().message });
    expect(events("federation_fetch_failed").map((l) => [l.code, l.failures, l.retry_in_ms])).toEqual([
      ["federation_endpoint_unreachable", 1, 1000],
      ["federation_endpoint_unreachable", 2, 2000],
      ["federation_endpoint_unreachable", 3, 4000],
      ["federation_endpoint_unreachable", 4, 5000],
      ["federation_endpoint_unreachable", 5, 5000],
    ]);
    await fed.tick();
    expect(fed.status()[0]).toMatchObject({ failures: 0, last_error: null, next_fetch_at: new Date(clock.now + 5000).toISOString() });
  });

  test("before any bundle is held, retries are capped at half default_refresh", async () => {
    const ep = endpoint(unreachable());
    const fed = await open({ settings: [setting({ defaultRefreshSeconds: 6 })], fetcher: ep.fetcher });
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      await fed.tick();
      const next = Date.parse(fed.status()[0]!.next_fetch_at);
      waits.push(next - clock.now);
      clock.now = next;
    }
    expect(waits).toEqual([1000, 2000, 3000, 3000]);
    expect(fed.status()[0]!.state).toBe("never_fetched");
  });
});

describe("maximum age", () => {
  test("a bundle not refreshed within max_age is no longer served, logged once; a later fetch restores it", async () => {
    const good = await jwksOf([rootA], { sequence: 3, hint: 20 });
    const ep = endpoint(good, unreachable());
    const fed = await open({ settings: [setting({ maxAgeSeconds: 100 })], fetcher: ep.fetcher });
    await fed.tick();
    for (let s = 10; s < 100; s += 10) {
      clock.now = at(s);
      await fed.tick();
    }
    clock.now = at(100) - 1;
    await fed.tick();
    expect(fed.served()).toHaveLength(1);
    expect(events("federated_bundle_dropped")).toHaveLength(0);
    clock.now = at(100);
    expect(fed.served()).toEqual([]);
    expect(fed.status()[0]).toMatchObject({ state: "dropped", expires_at: new Date(at(100)).toISOString() });
    await fed.tick();
    clock.now = at(110);
    await fed.tick();
    await fed.tick();
    expect(events("federated_bundle_dropped")).toHaveLength(1);
    expect(events("federated_bundle_dropped")[0]).toMatchObject({ level: "warn", trust_domain: "partner.test", refreshed_at: new Date(T0).toISOString(), max_age_seconds: 100, last_error: unreachable().message });
    ep.answers = [good];
    clock.now = Date.parse(fed.status()[0]!.next_fetch_at);
    await fed.tick();
    expect(fed.served()).toMatchObject([{ sequence: 3, refreshedAt: clock.now, expiresAt: clock.now + 100_000 }]);
    expect(fed.status()[0]!.state).toBe("current");
    expect(events("federated_bundle_updated").at(-1)).toMatchObject({ trust_domain: "partner.test", restored: true });
    // dropped again later: logged again, once
    clock.now += 100_000;
    ep.answers = [unreachable()];
    await fed.tick();
    await fed.tick();
    expect(events("federated_bundle_dropped")).toHaveLength(2);
  });
});

describe("across a restart (datastore state)", () => {
  test("the held bundle survives a reopen, and its maximum age counts from the real fetch", async () => {
    const store = memoryStore();
    const first = await open({ settings: [setting({ maxAgeSeconds: 100 })], store, fetcher: endpoint(await jwksOf([rootA], { sequence: 9 })).fetcher });
    await first.tick();
    await first.stop();
    expect(JSON.parse(store.map.get(STATE_KEY)!)).toMatchObject({ refreshed_at: T0 });

    clock.now = at(60);
    const down = endpoint(unreachable());
    const second = await open({ settings: [setting({ maxAgeSeconds: 100 })], store, fetcher: down.fetcher });
    expect(second.served()).toMatchObject([{ sequence: 9, refreshedAt: T0, expiresAt: at(100) }]);
    await second.tick();
    expect(down.calls.map((c) => c.at)).toEqual([at(60)]); // fetched at once after the start all the same
    clock.now = at(100);
    await second.tick();
    expect(second.served()).toEqual([]);
    expect(events("federated_bundle_dropped")).toHaveLength(1);

    // opened after the maximum age: not served, and said so at once
    log.lines.length = 0;
    const third = await open({ settings: [setting({ maxAgeSeconds: 100 })], store, fetcher: down.fetcher });
    expect(third.served()).toEqual([]);
    expect(third.status()[0]!.state).toBe("dropped");
    expect(events("federated_bundle_dropped")).toHaveLength(1);
  });

  test("state that does not parse counts as nothing held, logged", async () => {
    const store = memoryStore();
    store.map.set(STATE_KEY, JSON.stringify({ jwks: "not json", refreshed_at: T0 }));
    const fed = await open({ store });
    expect(fed.status()[0]!.state).toBe("never_fetched");
    expect(events("federation_state_unreadable")).toHaveLength(1);
  });
});

describe("what a fetch must carry", () => {
  test("a lower sequence than the held one is refused and the held bundle kept; equal or higher is taken", async () => {
    const store = memoryStore();
    const ep = endpoint(await jwksOf([rootA], { sequence: 5, hint: 10 }), await jwksOf([rootB], { sequence: 4, hint: 10 }));
    const fed = await open({ store, fetcher: ep.fetcher });
    await fed.tick();
    const stored = store.map.get(STATE_KEY);
    clock.now = at(5);
    await fed.tick();
    expect(fed.served()).toMatchObject([{ sequence: 5, refreshedAt: T0 }]);
    expect(store.map.get(STATE_KEY)).toBe(stored!);
    expect(fed.status()[0]).toMatchObject({ failures: 1, last_error: expect.stringContaining("sent sequence 4, older than the held 5") });
    expect(events("federation_fetch_failed")[0]).toMatchObject({ code: "federation_bundle_stale" });
    ep.answers = [await jwksOf([rootA, rootB], { sequence: 5, hint: 10 })];
    clock.now = at(6);
    await fed.tick();
    expect(fed.served()).toMatchObject([{ sequence: 5, roots: 2, refreshedAt: at(6) }]);
    ep.answers = [await jwksOf([rootB], { sequence: 6, hint: 10 })];
    clock.now = at(11);
    await fed.tick();
    expect(fed.served()).toMatchObject([{ sequence: 6, roots: 1 }]);
    expect(events("federated_bundle_updated").map((l) => l.sequence)).toEqual([5, 5, 6]);
  });

  const jwtOnly = async () => {
    const jwk = await subtle.exportKey("jwk", (await generateKeyPair({ extractable: true })).publicKey);
    return formatJwksBundle(Bundle.create(PARTNER, { jwtAuthorities: { k1: jwk } }));
  };
  const refused: [string, () => Promise<string> | string][] = [
    ["not JSON", () => "<html>hello</html>"],
    ["JSON but not a JWKS", () => '{"hello":"world"}'],
    ["PEM roots instead of JWKS", () => formatPemBundle(Bundle.create(PARTNER, { x509Authorities: [rootB.root.der] }))],
    ["a JWKS without keys", () => '{"keys":[]}'],
    ["a JWKS with JWT authorities only", jwtOnly],
  ];
  for (const [name, make] of refused) {
    test(`${name}: refused (federation_bundle_bad), the held bundle kept`, async () => {
      const ep = endpoint(await jwksOf([rootA], { sequence: 1, hint: 10 }), await make());
      const fed = await open({ fetcher: ep.fetcher });
      await fed.tick();
      clock.now = at(5);
      await fed.tick();
      expect(fed.served()).toMatchObject([{ sequence: 1, refreshedAt: T0 }]);
      expect(events("federation_fetch_failed").map((l) => l.code)).toEqual(["federation_bundle_bad"]);
    });
  }

  test("each trust domain keeps its own bundle; one failing does not touch the other", async () => {
    const texts = { partner: await jwksOf([rootA], { sequence: 1 }), other: await jwksOf([otherRoot], { sequence: 2, td: OTHER }) };
    const fetcher: BundleFetcher = async (f) => {
      if (f.trustDomain.equals(OTHER)) return texts.other;
      throw unreachable();
    };
    const fed = await open({ settings: [setting(), setting({ trustDomain: OTHER, bundleEndpoint: "https://other.test/bundle" })], fetcher });
    await fed.tick();
    expect(fed.served().map((b) => [b.trustDomain, b.sequence])).toEqual([["other.test", 2]]);
    expect(fed.status().map((s) => [s.trust_domain, s.state, s.failures])).toEqual([["partner.test", "never_fetched", 1], ["other.test", "current", 0]]);
    expect(fed.trustDomains).toEqual(["partner.test", "other.test"]);
  });
});

describe("refused when opened", () => {
  test("this server's own trust domain", async () => {
    const r = await refusal(open({ settings: [setting({ trustDomain: OWN })] }));
    expect(r).toMatchObject({ code: "server_config_invalid", isConfig: true });
    expect(r.message).toContain("example.org is this server's own trust domain");
  });

  test("an initial bundle file that cannot be read, named", async () => {
    const missing = join(dir, "missing.pem");
    const r = await refusal(open({ settings: [spiffeSetting({ bundleFile: missing })] }));
    expect(r).toMatchObject({ code: "server_config_invalid", isConfig: true });
    expect(r.message).toContain(`the initial bundle of partner.test: cannot read ${JSON.stringify(missing)}: no such file`);
  });

  // Read at start, before the listeners: a FIFO once kept the server from ever starting.
  test("an initial bundle file that is a FIFO is refused, not waited on", async () => {
    const fifo = join(dir, "bundle-fifo.pem");
    expect(Bun.spawnSync(["mkfifo", fifo]).exitCode).toBe(0);
    const r = await refusal(open({ settings: [spiffeSetting({ bundleFile: fifo })] }));
    expect(r).toMatchObject({ code: "server_config_invalid", isConfig: true });
    expect(r.message).toContain(`the initial bundle of partner.test: ${JSON.stringify(fifo)} is not a regular file`);
  });

  const wrong: [string, () => Promise<string> | string, string][] = [
    ["text that is no bundle", () => "hello\n", "is not a bundle of partner.test"],
    ["a PEM private key", () => "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "is not a bundle of partner.test"],
    ["a broken JWKS", () => '{"keys": 3}', "is not a bundle of partner.test"],
    ["a JWKS without X.509 roots", () => '{"keys":[]}', "holds no X.509 root"],
  ];
  for (const [name, make, says] of wrong) {
    test(`an initial bundle file with ${name}, named`, async () => {
      const file = join(dir, `wrong-${name.replaceAll(/\W/g, "-")}`);
      writeFileSync(file, await make());
      const r = await refusal(open({ settings: [spiffeSetting({ bundleFile: file })] }));
      expect(r).toMatchObject({ code: "server_config_invalid", isConfig: true });
      expect(r.message).toContain(file);
      expect(r.message).toContain(says);
    });
  }

  test("an https_web ca file that cannot be read, named", async () => {
    const missing = join(dir, "missing-ca.pem");
    const r = await refusal(open({ settings: [setting({ caFile: missing })] }));
    expect(r).toMatchObject({ code: "server_config_invalid", isConfig: true });
    expect(r.message).toContain(`the CA file of partner.test: cannot read ${JSON.stringify(missing)}: no such file`);
  });

  test("an initial bundle as SPIFFE JWKS is read as well as PEM", async () => {
    const file = join(dir, "initial.json");
    writeFileSync(file, await jwksOf([rootA, rootB], { sequence: 2 }));
    const ep = endpoint(unreachable());
    const fed = await open({ settings: [spiffeSetting({ bundleFile: file })], fetcher: ep.fetcher });
    await fed.tick();
    expect(ep.calls[0]!.trust.held!.x509Authorities).toHaveLength(2);
    expect(fed.served()).toEqual([]); // the initial bundle authenticates the endpoint; it is not handed out
  });
});

describe("what authenticates the endpoint", () => {
  test("https_spiffe: the initial bundle until the first fetch, then the fetched one, still after it aged out", async () => {
    const store = memoryStore();
    const ep = endpoint(unreachable(), await jwksOf([rootA, rootB], { sequence: 2, hint: 10 }), unreachable());
    const fed = await open({ settings: [spiffeSetting({ maxAgeSeconds: 30 })], store, fetcher: ep.fetcher });
    await fed.tick(); // fails: the initial bundle was offered
    clock.now = at(1);
    await fed.tick(); // succeeds with the initial bundle
    clock.now = at(6);
    await fed.tick(); // fails: the fetched bundle was offered
    clock.now = at(40);
    await fed.tick(); // aged out, not served; still the fetched bundle
    const held = ep.calls.map((c) => c.trust.held!.x509Authorities.length);
    expect(held).toEqual([1, 1, 2, 2]);
    expect(ep.calls[0]!.trust.held!.hasX509Authority(rootA.root.der)).toBe(true);
    expect(ep.calls[0]!.trust.held!.trustDomain.equals(PARTNER)).toBe(true);
    expect(ep.calls[2]!.trust.held!.sequence).toBe(2);
    expect(ep.calls[3]!.trust.held!.hasX509Authority(rootB.root.der)).toBe(true);
    expect(fed.served()).toEqual([]);
    expect(ep.calls.every((c) => c.trust.caPem === null)).toBe(true);

    // after a restart: the bundle fetched before it, not the initial one
    const again = endpoint(unreachable());
    const reopened = await open({ settings: [spiffeSetting({ maxAgeSeconds: 30 })], store, fetcher: again.fetcher });
    await reopened.tick();
    expect(again.calls[0]!.trust.held!.x509Authorities).toHaveLength(2);
  });

  test("https_web: the ca file's text", async () => {
    const caFile = join(dir, "web-ca.pem");
    const pem = encodePem("CERTIFICATE", otherRoot.root.der);
    writeFileSync(caFile, pem);
    const ep = endpoint(await jwksOf([rootA]));
    const fed = await open({ settings: [setting({ caFile })], fetcher: ep.fetcher });
    await fed.tick();
    expect(ep.calls[0]!.trust).toEqual({ held: null, caPem: pem });
    expect(ep.calls[0]!.setting.profile).toBe("https_web");
  });
});

describe("stop", () => {
  test("aborts a fetch in flight, counts no failure, and starts no more", async () => {
    const ep = endpoint((signal) => new Promise<string>((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true })));
    const fed = await open({ fetcher: ep.fetcher });
    const ticking = fed.tick();
    expect(ep.calls).toHaveLength(1);
    expect(ep.calls[0]!.signal.aborted).toBe(false);
    await fed.stop();
    await ticking;
    expect(ep.calls[0]!.signal.aborted).toBe(true);
    expect(fed.status()[0]).toMatchObject({ failures: 0, last_error: null });
    expect(events("federation_fetch_failed")).toEqual([]);
    clock.now = at(100);
    await fed.tick();
    expect(ep.calls).toHaveLength(1);
  });
});
