import { describe, expect, test } from "bun:test";
import type { NewRegistrationEntry } from "./datastore.ts";
import { StoreError } from "./errors.ts";
import { storePerTest } from "./test-support.ts";
import { rejectionOf } from "../../../test/shim.ts";

const t = storePerTest();

const T0 = new Date("2030-01-01T00:00:00.123Z");
const NODE1 = "spiffe://example.org/tidegate/agent/node-1";
const NODE2 = "spiffe://example.org/tidegate/agent/node-2";

function entry(over: Partial<NewRegistrationEntry> = {}): NewRegistrationEntry {
  return { spiffeId: "spiffe://example.org/web", parentId: NODE1, selectors: ["unix:uid:1000"], ttlSeconds: 3600, createdAt: T0, ...over };
}

const rejection = (p: Promise<unknown>) => rejectionOf(p, StoreError);

describe("registration entries", () => {
  test("create, get, list, count, delete", async () => {
    const a = await t.store.createEntry(entry({ dnsNames: ["web.example.org", "web"] }));
    expect(a.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a).toEqual({
      id: a.id,
      spiffeId: "spiffe://example.org/web",
      parentId: NODE1,
      selectors: ["unix:uid:1000"],
      ttlSeconds: 3600,
      dnsNames: ["web.example.org", "web"],
      createdAt: T0,
      revision: 1,
    });
    expect(Object.isFrozen(a)).toBe(true);
    const b = await t.store.createEntry(entry({ spiffeId: "spiffe://example.org/api", parentId: NODE2 }));
    expect(await t.store.getEntry(a.id)).toEqual(a);
    expect(await t.store.getEntry("no-such-id")).toBeNull();
    expect(await t.store.countEntries()).toBe(2);
    expect((await t.store.listEntries()).map((e) => e.id)).toEqual([b.id, a.id]); // by SPIFFE ID
    expect(await t.store.listEntries({ parentId: NODE1 })).toEqual([a]);
    expect(await t.store.listEntries({ spiffeId: "spiffe://example.org/api" })).toEqual([b]);
    expect(await t.store.listEntries({ parentId: NODE1, spiffeId: "spiffe://example.org/api" })).toEqual([]);
    expect(await t.store.deleteEntry(a.id)).toBe(true);
    expect(await t.store.deleteEntry(a.id)).toBe(false);
    expect(await t.store.getEntry(a.id)).toBeNull();
    expect(await t.store.countEntries()).toBe(1);
  });

  test("selectors are stored sorted and without duplicates; DNS names deduplicated in order", async () => {
    const e = await t.store.createEntry(
      entry({ selectors: ["unix:uid:1000", "tidegate:workload:web", "unix:path:/usr/bin/node", "unix:uid:1000"], dnsNames: ["b", "a", "b"] }),
    );
    expect(e.selectors).toEqual(["tidegate:workload:web", "unix:path:/usr/bin/node", "unix:uid:1000"]);
    expect(e.dnsNames).toEqual(["b", "a"]);
    expect((await t.store.getEntry(e.id))?.selectors).toEqual(e.selectors);
  });

  test("the same SPIFFE ID, parent and selector set (in any order) is store_entry_exists", async () => {
    await t.store.createEntry(entry({ selectors: ["a:1", "b:2"] }));
    const err = await rejection(t.store.createEntry(entry({ selectors: ["b:2", "a:1", "b:2"], ttlSeconds: 60 })));
    expect(err.code).toBe("store_entry_exists");
    expect(err.message).toBe(
      'store: an entry for "spiffe://example.org/web" under parent "spiffe://example.org/tidegate/agent/node-1" with selectors ["a:1","b:2"] already exists',
    );
    // A different parent, SPIFFE ID or selector set is a different entry.
    await t.store.createEntry(entry({ selectors: ["a:1", "b:2"], parentId: NODE2 }));
    await t.store.createEntry(entry({ selectors: ["a:1", "b:2"], spiffeId: "spiffe://example.org/other" }));
    await t.store.createEntry(entry({ selectors: ["a:1"] }));
    expect(await t.store.countEntries()).toBe(4);
  });

  test.each<[string, Partial<NewRegistrationEntry>]>([
    ["no selectors", { selectors: [] }],
    ["a selector without a type", { selectors: ["uid1000"] }],
    ["a selector with an empty value", { selectors: ["unix:"] }],
    ["a selector with an upper-case type", { selectors: ["UNIX:uid:1"] }],
    ["a selector with a control character", { selectors: ["unix:uid:1\n"] }],
    ["an empty SPIFFE ID", { spiffeId: "" }],
    ["an empty parent", { parentId: "" }],
    ["a zero TTL", { ttlSeconds: 0 }],
    ["a fractional TTL", { ttlSeconds: 1.5 }],
    ["a NaN TTL", { ttlSeconds: Number.NaN }],
    ["an invalid date", { createdAt: new Date(Number.NaN) }],
    ["an empty DNS name", { dnsNames: [""] }],
  ])("%s is store_invalid_record and stores nothing", async (_name, over) => {
    expect((await rejection(t.store.createEntry(entry(over)))).code).toBe("store_invalid_record");
    expect(await t.store.countEntries()).toBe(0);
  });

  test("1,000 entries under one node list in order", async () => {
    for (let i = 0; i < 1000; i++) {
      await t.store.createEntry(entry({ spiffeId: `spiffe://example.org/w/${String(i).padStart(4, "0")}` }));
    }
    await t.store.createEntry(entry({ parentId: NODE2 }));
    const listed = await t.store.listEntries({ parentId: NODE1 });
    expect(listed.length).toBe(1000);
    expect(listed[999]?.spiffeId).toBe("spiffe://example.org/w/0999");
  });
});
