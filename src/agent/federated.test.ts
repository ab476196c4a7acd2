// The federated bundles as the agent holds them (federated.ts): what a sync answer's `federated`
// list may carry, what counts as a change, the file that keeps them across a restart; and
// AgentCore taking them from a sync answer (the stand-in server) and dropping them.
import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { memoryLogger } from "../runtime/log.ts";
import { Bundle, formatJwksBundle, TrustDomain } from "../spiffe/index.ts";
import { AgentCore } from "./agent-core.ts";
import { bootstrap } from "./bootstrap.ts";
import { federatedChanges, liveFederated, loadFederated, persistFederated, readFederated, type FederatedHeld, type FederatedItem } from "./federated.ts";
import { statusOf } from "./health.ts";
import { proxyIdentity } from "./proxy-identity.ts";
import { StateFiles } from "./state-files.ts";
import { startStandIn, type StandIn } from "./test-stand-in.ts";
import { tempPlaces, type TempPlaces } from "./test-support.ts";
import { sha256Hex } from "./trust.ts";

const OWN = TrustDomain.parse("example.org");
const PARTNER = TrustDomain.parse("partner.test");
const OTHER = TrustDomain.parse("other.test");
const EXPIRES = "2030-01-01T00:00:00.000Z";

let partner: TestCa;
let partnerNext: TestCa;
let other: TestCa;

beforeAll(async () => {
  [partner, partnerNext, other] = await Promise.all([createTestCa({ trustDomain: "partner.test" }), createTestCa({ trustDomain: "partner.test" }), createTestCa({ trustDomain: "other.test" })]);
});

const bundleOf = (td: TrustDomain, ...cas: TestCa[]) => Bundle.create(td, { x509Authorities: cas.map((c) => c.root.der), sequence: 1 });
const jwksOf = async (td: TrustDomain, ...cas: TestCa[]) => JSON.parse(await formatJwksBundle(bundleOf(td, ...cas)));
const item = async (td: string, cas: TestCa[], expires_at = EXPIRES): Promise<FederatedItem> => ({ trust_domain: td, bundle: await jwksOf(TrustDomain.parse(td === "Not A Domain!" ? "x.test" : td), ...cas), expires_at });

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as { code?: string }).code ?? "", message: (e as Error).message };
  }
  throw new Error("expected a refusal");
}

describe("readFederated", () => {
  test("bundles by trust domain name, each parsed for its own trust domain, with the expiry", async () => {
    const m = await readFederated([await item("partner.test", [partner]), await item("other.test", [other], "2030-01-02T00:00:00Z")], OWN, "GET /v1/sync");
    expect([...m.keys()]).toEqual(["partner.test", "other.test"]);
    expect(m.get("partner.test")!.bundle.trustDomain.equals(PARTNER)).toBe(true);
    expect(m.get("partner.test")!.bundle.hasX509Authority(partner.root.der)).toBe(true);
    expect(m.get("other.test")!.bundle.trustDomain.equals(OTHER)).toBe(true);
    expect(m.get("other.test")!.expiresAt).toBe(Date.parse("2030-01-02T00:00:00Z"));
    expect((await readFederated([], OWN, "x")).size).toBe(0);
  });

  const refused: [string, () => Promise<FederatedItem[]>, string][] = [
    ["a trust domain that does not parse", async () => [{ ...(await item("partner.test", [partner])), trust_domain: "Not A Domain!" }], 'names federated trust domain "Not A Domain!", which does not parse'],
    ["a trust domain that is not a string", async () => [{ ...(await item("partner.test", [partner])), trust_domain: 42 as unknown as string }], "which does not parse"],
    ["our own trust domain", async () => [await item("example.org", [partner])], "a federated bundle for our own trust domain example.org"],
    ["one trust domain twice", async () => [await item("partner.test", [partner]), await item("partner.test", [partnerNext])], "hands over partner.test twice"],
    ["an expiry that is not a time", async () => [await item("partner.test", [partner], "tomorrow")], "gives partner.test an expiry that is not a time"],
    ["a bundle that is not SPIFFE JWKS", async () => [{ trust_domain: "partner.test", bundle: { keys: 3 }, expires_at: EXPIRES }], "(federated partner.test) does not parse"],
    ["a bundle without X.509 roots", async () => [{ trust_domain: "partner.test", bundle: { keys: [] }, expires_at: EXPIRES }], "(federated partner.test) holds no X.509 root"],
  ];
  for (const [name, items, says] of refused) {
    test(`${name}: server_bad_answer`, async () => {
      const r = await refusal(readFederated(await items(), OWN, "GET /v1/sync"));
      expect(r.code).toBe("server_bad_answer");
      expect(r.message).toStartWith("agent: ");
      expect(r.message).toContain(says);
    });
  }
});

describe("federatedChanges", () => {
  const h = (b: Bundle, expiresAt = 1000): FederatedHeld => ({ bundle: b, expiresAt });

  test("new, replaced, gone, expiry moved, and nothing", () => {
    const p1 = () => bundleOf(PARTNER, partner);
    const cases: [string, Map<string, FederatedHeld>, Map<string, FederatedHeld>, { updated: string[]; dropped: string[]; any: boolean }][] = [
      ["nothing before or after", new Map(), new Map(), { updated: [], dropped: [], any: false }],
      ["handed over", new Map(), new Map([["partner.test", h(p1())]]), { updated: ["partner.test"], dropped: [], any: true }],
      ["an equal bundle (another object), the same expiry", new Map([["partner.test", h(p1())]]), new Map([["partner.test", h(p1())]]), { updated: [], dropped: [], any: false }],
      ["only the expiry moved", new Map([["partner.test", h(p1())]]), new Map([["partner.test", h(p1(), 2000)]]), { updated: [], dropped: [], any: true }],
      ["another root", new Map([["partner.test", h(p1())]]), new Map([["partner.test", h(bundleOf(PARTNER, partner, partnerNext))]]), { updated: ["partner.test"], dropped: [], any: true }],
      ["another sequence", new Map([["partner.test", h(p1())]]), new Map([["partner.test", h(p1().withSequence(2))]]), { updated: ["partner.test"], dropped: [], any: true }],
      ["gone", new Map([["partner.test", h(p1())], ["other.test", h(bundleOf(OTHER, other))]]), new Map([["other.test", h(bundleOf(OTHER, other))]]), { updated: [], dropped: ["partner.test"], any: true }],
    ];
    for (const [name, before, after, want] of cases) expect([name, federatedChanges(before, after)]).toEqual([name, want]);
  });
});

describe("liveFederated", () => {
  test("only bundles whose expiry is still ahead", () => {
    const m = new Map([
      ["partner.test", { bundle: bundleOf(PARTNER, partner), expiresAt: 2000 }],
      ["other.test", { bundle: bundleOf(OTHER, other), expiresAt: 1000 }],
    ]);
    expect(liveFederated(m, 999).map((b) => b.trustDomain.name)).toEqual(["partner.test", "other.test"]);
    expect(liveFederated(m, 1000).map((b) => b.trustDomain.name)).toEqual(["partner.test"]);
    expect(liveFederated(m, 2000)).toEqual([]);
  });
});

describe("federated.json", () => {
  let t: TempPlaces;
  let files: StateFiles;
  beforeEach(() => {
    t = tempPlaces();
    files = new StateFiles(t.places.stateDir);
    files.ensure();
  });
  afterEach(() => t.cleanup());

  test("persist then load gives the same bundles and expiries; the file is public (0644)", async () => {
    const held = new Map([
      ["partner.test", { bundle: bundleOf(PARTNER, partner, partnerNext).withRefreshHint(30), expiresAt: Date.parse(EXPIRES) }],
      ["other.test", { bundle: bundleOf(OTHER, other), expiresAt: Date.parse(EXPIRES) + 1000 }],
    ]);
    await persistFederated(files, held);
    expect(statSync(files.path("federated.json")).mode & 0o777).toBe(0o644);
    const loaded = await loadFederated(files, OWN);
    expect([...loaded.keys()]).toEqual(["partner.test", "other.test"]);
    for (const [td, h] of held) {
      expect(loaded.get(td)!.bundle.equals(h.bundle)).toBe(true);
      expect(loaded.get(td)!.expiresAt).toBe(h.expiresAt);
    }
    expect(federatedChanges(held, loaded).any).toBe(false);
    await persistFederated(files, new Map());
    expect((await loadFederated(files, OWN)).size).toBe(0);
  });

  test("no file, or one that does not read back, counts as nothing held", async () => {
    expect((await loadFederated(files, OWN)).size).toBe(0);
    const bad = ["not json", '{"trust_domain":"partner.test"}', "null", JSON.stringify([await item("example.org", [partner])]), JSON.stringify([{ trust_domain: "partner.test", bundle: { keys: [] }, expires_at: EXPIRES }])];
    for (const text of bad) {
      writeFileSync(files.path("federated.json"), text);
      expect([text, (await loadFederated(files, OWN)).size]).toEqual([text, 0]);
    }
  });
});

describe("AgentCore with a server that federates", () => {
  let s: StandIn;
  let t: TempPlaces;
  let log: ReturnType<typeof memoryLogger>;
  beforeEach(async () => {
    s = await startStandIn();
    s.tokens.set("tok", "node-1");
    t = tempPlaces();
    log = memoryLogger();
  });
  afterEach(async () => {
    await s.close();
    t.cleanup();
  });

  async function joined(): Promise<{ core: AgentCore; files: StateFiles }> {
    const files = new StateFiles(t.places.stateDir);
    const identity = await bootstrap({ files, serverUrl: s.publicUrl, joinToken: "tok", fingerprint: s.fingerprint, now: () => s.clock.now, logger: log, random: () => 0.5 });
    const core = new AgentCore({ files, identity, syncIntervalMs: 5000, retryMaxMs: 60_000, now: () => s.clock.now, logger: log, random: () => 0.5 });
    await core.init();
    return { core, files };
  }
  async function restarted(files: StateFiles): Promise<AgentCore> {
    const identity = await bootstrap({ files, serverUrl: s.publicUrl, now: () => s.clock.now, logger: log, random: () => 0.5 });
    const core = new AgentCore({ files, identity, syncIntervalMs: 5000, retryMaxMs: 60_000, now: () => s.clock.now, logger: log, random: () => 0.5 });
    await core.init();
    return core;
  }
  const events = (name: string) => log.lines.filter((l) => l.event === name);
  const nextSync = async (core: AgentCore) => {
    s.clock.now += 5000;
    await core.tick();
  };

  test("a sync answer with a federated bundle: held, logged, kept in federated.json; an answer without it drops it", async () => {
    const expiresAt = s.clock.now + 60_000;
    s.federated = [await item("partner.test", [partner], new Date(expiresAt).toISOString())];
    const { core, files } = await joined();
    const identity = proxyIdentity(core, () => s.clock.now);
    const g0 = identity.trust().generation;
    await core.tick();
    expect([...core.federated.keys()]).toEqual(["partner.test"]);
    expect(core.federated.get("partner.test")!.expiresAt).toBe(expiresAt);
    expect(events("federated_bundle_updated")).toMatchObject([{ level: "info", trust_domain: "partner.test", sequence: 1, roots: [await sha256Hex(partner.root.der)], expires_at: new Date(expiresAt).toISOString() }]);
    expect(existsSync(files.path("federated.json"))).toBe(true);
    expect((await loadFederated(files, OWN)).get("partner.test")!.expiresAt).toBe(expiresAt);
    expect(statusOf(core, s.clock.now).federation).toEqual([{ trust_domain: "partner.test", sequence: 1, roots: 1, expires_at: new Date(expiresAt).toISOString(), expired: false }]);
    expect(identity.trust().generation).toBeGreaterThan(g0);
    expect(identity.trust().caPem(PARTNER)).toContain("BEGIN CERTIFICATE");

    // the same again: nothing logged, nothing new for the proxies
    const g1 = identity.trust().generation;
    await nextSync(core);
    expect(events("federated_bundle_updated")).toHaveLength(1);
    expect(identity.trust().generation).toBe(g1);

    // a restarted agent holds it from the file before it reaches the server
    const again = await restarted(files);
    expect([...again.federated.keys()]).toEqual(["partner.test"]);

    s.federated = null;
    await nextSync(core);
    expect(core.federated.size).toBe(0);
    expect(events("federated_bundle_dropped")).toMatchObject([{ level: "warn", trust_domain: "partner.test", reason: "not_handed_over" }]);
    expect(JSON.parse(readFileSync(files.path("federated.json"), "utf8"))).toEqual([]);
    expect(identity.trust().caPem(PARTNER)).toBeNull();
    expect(statusOf(core, s.clock.now).federation).toEqual([]);
  });

  test("a refetched bundle (later expiry only) is kept without a log line and without a new trust generation", async () => {
    s.federated = [await item("partner.test", [partner], new Date(s.clock.now + 60_000).toISOString())];
    const { core, files } = await joined();
    const identity = proxyIdentity(core, () => s.clock.now);
    await core.tick();
    const g = identity.trust().generation;
    const later = s.clock.now + 120_000;
    s.federated = [await item("partner.test", [partner], new Date(later).toISOString())];
    await nextSync(core);
    expect(core.federated.get("partner.test")!.expiresAt).toBe(later);
    expect((await loadFederated(files, OWN)).get("partner.test")!.expiresAt).toBe(later);
    expect(events("federated_bundle_updated")).toHaveLength(1);
    expect(identity.trust().generation).toBe(g);
  });

  test("an answer handing over our own trust domain fails the sync; the held bundles stay", async () => {
    const expiresAt = s.clock.now + 60_000;
    s.federated = [await item("partner.test", [partner], new Date(expiresAt).toISOString())];
    const { core } = await joined();
    await core.tick();
    s.federated = [await item("partner.test", [partner]), await item("example.org", [other])];
    await nextSync(core);
    expect(core.lastSync.error).toContain("our own trust domain example.org");
    expect(events("sync_failed")).toHaveLength(1);
    expect([...core.federated.keys()]).toEqual(["partner.test"]);
    expect(core.federated.get("partner.test")!.expiresAt).toBe(expiresAt);
  });

  test("a held bundle past its expiry is no longer trusted, though no sync came", async () => {
    const expiresAt = s.clock.now + 60_000;
    s.federated = [await item("partner.test", [partner], new Date(expiresAt).toISOString())];
    const { core } = await joined();
    const identity = proxyIdentity(core, () => s.clock.now);
    await core.tick();
    await s.down();
    expect(identity.trust().caPem(PARTNER)).not.toBeNull();
    s.clock.now = expiresAt;
    expect(identity.trust().caPem(PARTNER)).toBeNull();
    expect(statusOf(core, s.clock.now).federation[0]).toMatchObject({ trust_domain: "partner.test", expired: true });
  });
});
