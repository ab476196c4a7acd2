import { describe, expect, test } from "bun:test";
import type { IssuedCertificate } from "./datastore.ts";
import { StoreError } from "./errors.ts";
import { SqliteDatastore } from "./sqlite.ts";
import { storePerTest } from "./test-support.ts";
import { rejectionCode } from "../../../test/shim.ts";

const t = storePerTest();

const T0 = new Date("2030-01-01T00:00:00Z");
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

const codeOf = (p: Promise<unknown>) => rejectionCode(p, StoreError);

describe("attested nodes", () => {
  const node = {
    nodeName: "node-1",
    spiffeId: "spiffe://example.org/tidegate/agent/node-1",
    serial: "0a1b",
    notAfter: at(3600),
    attestedAt: T0,
    updatedAt: T0,
  };

  test("upsert, get, list, replace, delete", async () => {
    await t.store.upsertNode(node);
    await t.store.upsertNode({ ...node, nodeName: "node-0", spiffeId: "spiffe://example.org/tidegate/agent/node-0" });
    expect(await t.store.getNode("node-1")).toEqual(node);
    expect(await t.store.getNode("nope")).toBeNull();
    expect((await t.store.listNodes()).map((n) => n.nodeName)).toEqual(["node-0", "node-1"]);
    const renewed = { ...node, serial: "FFEE", notAfter: at(7200), updatedAt: at(1800) };
    await t.store.upsertNode(renewed);
    expect(await t.store.getNode("node-1")).toEqual({ ...renewed, serial: "ffee" });
    expect(await t.store.deleteNode("node-1")).toBe(true);
    expect(await t.store.deleteNode("node-1")).toBe(false);
    expect((await t.store.listNodes()).length).toBe(1);
  });

  test.each([
    ["a non-hex serial", { serial: "xyz" }],
    ["an empty node name", { nodeName: "" }],
    ["an invalid date", { notAfter: new Date("nope") }],
  ])("%s is store_invalid_record", async (_name, over) => {
    expect(await codeOf(t.store.upsertNode({ ...node, ...over }))).toBe("store_invalid_record");
  });
});

describe("issued certificates", () => {
  const cert: IssuedCertificate = {
    serial: "7F00AA",
    spiffeId: "spiffe://example.org/web",
    kind: "workload",
    nodeName: "node-1",
    entryId: "8d0c2c36-0000-4000-8000-000000000000",
    notBefore: T0,
    notAfter: at(3600),
    issuedAt: T0,
  };

  test("record, get by serial in any case, count, prune", async () => {
    await t.store.recordIssued(cert);
    await t.store.recordIssued({ ...cert, serial: "01", kind: "ca", nodeName: null, entryId: null, notAfter: at(60) });
    expect(await t.store.getIssued("7f00aa")).toEqual({ ...cert, serial: "7f00aa" });
    expect(await t.store.getIssued("7F00AA")).toEqual({ ...cert, serial: "7f00aa" });
    expect((await t.store.getIssued("01"))?.nodeName).toBeNull();
    expect(await t.store.getIssued("02")).toBeNull();
    expect(await t.store.countIssued()).toBe(2);
    expect(await t.store.pruneIssued(at(60))).toBe(0); // not_after < before
    expect(await t.store.pruneIssued(at(61))).toBe(1);
    expect(await t.store.countIssued()).toBe(1);
  });

  test("a burst of records is committed together and each promise resolves after the commit", async () => {
    const serials = Array.from({ length: 50 }, (_, i) => (0x1000 + i).toString(16));
    await Promise.all(serials.map((serial) => t.store.recordIssued({ ...cert, serial })));
    expect(await t.store.countIssued()).toBe(50);
  });

  test("one bad record in a burst is refused alone; the others are recorded", async () => {
    await t.store.recordIssued(cert);
    const results = await Promise.all([
      codeOf(t.store.recordIssued({ ...cert, serial: "a1" })),
      codeOf(t.store.recordIssued({ ...cert, serial: "7f00aa" })),
      codeOf(t.store.recordIssued({ ...cert, serial: "a2" })),
    ]);
    expect(results).toEqual(["resolved", "store_serial_exists", "resolved"]);
    expect(await t.store.countIssued()).toBe(3);
  });

  test("records still waiting for their commit are written by close()", async () => {
    const pending = [t.store.recordIssued({ ...cert, serial: "b1" }), t.store.recordIssued({ ...cert, serial: "b2" })];
    await t.store.close();
    await Promise.all(pending);
    const again = await SqliteDatastore.open(t.tmp.path("s.db"));
    expect(await again.countIssued()).toBe(2);
    await again.close();
  });

  test("a serial recorded twice is store_serial_exists and the first record stays", async () => {
    await t.store.recordIssued(cert);
    expect(await codeOf(t.store.recordIssued({ ...cert, serial: "7f00aa", spiffeId: "spiffe://example.org/other" }))).toBe(
      "store_serial_exists",
    );
    expect((await t.store.getIssued(cert.serial))?.spiffeId).toBe(cert.spiffeId);
  });

  test.each([
    ["an unknown kind", { kind: "user" as unknown as IssuedCertificate["kind"] }],
    ["an empty serial", { serial: "" }],
    ["a serial with a colon", { serial: "7f:00" }],
    ["an invalid date", { issuedAt: new Date(Number.NaN) }],
  ])("%s is store_invalid_record", async (_name, over) => {
    expect(await codeOf(t.store.recordIssued({ ...cert, ...over }))).toBe("store_invalid_record");
    expect(await t.store.countIssued()).toBe(0);
  });
});

describe("bundle history", () => {
  test("sequences count from 1 per trust domain; latest and list", async () => {
    expect(await t.store.latestBundle("example.org")).toBeNull();
    expect(await t.store.appendBundle({ trustDomain: "example.org", jwks: '{"keys":[1]}', createdAt: T0 })).toBe(1);
    expect(await t.store.appendBundle({ trustDomain: "example.org", jwks: '{"keys":[2]}', createdAt: at(1) })).toBe(2);
    expect(await t.store.appendBundle({ trustDomain: "other.org", jwks: '{"keys":[]}', createdAt: at(2) })).toBe(1);
    expect(await t.store.appendBundle({ trustDomain: "example.org", jwks: '{"keys":[3]}', createdAt: at(3) })).toBe(3);
    expect(await t.store.latestBundle("example.org")).toEqual({ trustDomain: "example.org", sequence: 3, jwks: '{"keys":[3]}', createdAt: at(3) });
    expect((await t.store.listBundles("example.org")).map((b) => b.sequence)).toEqual([1, 2, 3]);
    expect((await t.store.listBundles("other.org")).map((b) => b.jwks)).toEqual(['{"keys":[]}']);
    expect(await t.store.listBundles("none.org")).toEqual([]);
  });

  test("an empty JWKS is store_invalid_record", async () => {
    expect(await codeOf(t.store.appendBundle({ trustDomain: "example.org", jwks: "", createdAt: T0 }))).toBe("store_invalid_record");
  });
});

describe("server state", () => {
  test("get, set, overwrite; values may be empty or multi-line", async () => {
    expect(await t.store.getState("ca.next_rotation")).toBeNull();
    await t.store.setState("ca.next_rotation", "2030-01-01");
    await t.store.setState("ca.next_rotation", "2030-01-02");
    await t.store.setState("pem", "-----BEGIN X-----\nAA==\n-----END X-----\n");
    await t.store.setState("empty", "");
    expect(await t.store.getState("ca.next_rotation")).toBe("2030-01-02");
    expect(await t.store.getState("pem")).toBe("-----BEGIN X-----\nAA==\n-----END X-----\n");
    expect(await t.store.getState("empty")).toBe("");
    expect(await codeOf(t.store.setState("", "v"))).toBe("store_invalid_record");
  });
});
