// The identity server's own audit log: a real server (test-server.ts) attests a node and serves an
// admin request; its audit folder then holds those events in the log's schema, chained and signed
// with the server's own SVID, and verifies against the server's bundle.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { joinNode, startTestServer, TEST_TD, type TestServer } from "../../server/test-server.ts";
import { BundleSet } from "../../spiffe/bundle-set.ts";
import { parsePemBundle } from "../../spiffe/bundle-pem.ts";
import { TrustDomain } from "../../spiffe/trust-domain.ts";
import { validateEvent, verifyAudit } from "../format/index.ts";
import { listLogFiles } from "./files.ts";
import { memoryAudit } from "./memory-audit.ts";
import { auditingLogger, SERVER_AUDIT_EVENTS } from "./server-events.ts";
import { memoryLogger } from "../../runtime/log.ts";

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer();
});
afterAll(async () => {
  await t?.close();
});

const dir = () => join(t.places.auditDir, "server");
const events = () => listLogFiles(dir()).flatMap((f) => readFileSync(f.path, "utf8").trimEnd().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>));

describe("the server's audit log", () => {
  test("a join, an SVID and an admin action are recorded; a checkpoint signed by the server verifies against its bundle", async () => {
    const { answer } = await joinNode(t, "node-a");
    const created = await t.admin("POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}/w1`, parent_id: answer.spiffe_id, selectors: ["unix:uid:1000"] });
    expect(created.status).toBe(201);
    await t.server.stop(); // the closing checkpoint
    const all = events();
    const types = all.map((e) => e.type);
    expect(types).toContain("node_attested");
    expect(types).toContain("admin");
    expect(all.find((e) => e.type === "node_attested")).toMatchObject({ node_id: answer.spiffe_id, method: "join_token", node: "node-a" });
    expect(all.filter((e) => e.type === "admin").map((e) => e.action)).toEqual(["token_created", "entry_created"]);
    for (const e of all) validateEvent(e);
    const last = all.at(-1)!;
    expect(last.type).toBe("checkpoint");
    expect(String(last.signer)).toStartWith(`spiffe://${TEST_TD}/`);
    const td = TrustDomain.parse(TEST_TD);
    const bundles = BundleSet.of(parsePemBundle(td, t.server.rootsPem()));
    const files = listLogFiles(dir()).map((f) => ({ name: f.name, text: readFileSync(f.path) }));
    const state = JSON.parse(readFileSync(join(t.places.stateDir, "server", "audit-checkpoint.json"), "utf8"));
    const r = await verifyAudit({ files, bundles, state, now: new Date() });
    expect(r.firstBreak).toBeNull();
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([]);
    // the join token is in no event
    expect(JSON.stringify(all)).not.toMatch(/"token":/);
  });

  test("each mapped server line becomes an event its schema accepts; others are passed on only", () => {
    const audit = memoryAudit();
    const log = memoryLogger();
    const l = auditingLogger(log, audit);
    const samples: Record<string, Record<string, unknown>> = {
      node_attested: { node: "n", spiffe_id: "spiffe://example.org/tidegate/agent/n", serial: "0a", not_after: "2026-01-01T00:00:00.000Z", source: "127.0.0.1" },
      node_renewed: { node: "n", spiffe_id: "spiffe://example.org/tidegate/agent/n", serial: "0b", not_after: "2026-01-01T00:00:00.000Z" },
      node_reattested: { node: "n", spiffe_id: "spiffe://example.org/tidegate/agent/n", serial: "0c", not_after: "2026-01-01T00:00:00.000Z" },
      svid_issued: { node: "n", entry_id: "e1", spiffe_id: "spiffe://example.org/w", serial: "0d", not_after: "2026-01-01T00:00:00.000Z" },
      ca_rotated: { serial: "01", root: "02", not_after: "2026-01-01T00:00:00.000Z", reason: "manual" },
      root_published: { serial: "03", activate_at: "2026-01-01T00:00:00.000Z", not_after: "2027-01-01T00:00:00.000Z", reason: "manual" },
      root_activated: { serial: "03", previous: "02" },
      bundle_updated: { trust_domain: "example.org", spiffe_sequence: 4, history_row: 2, roots: 2 },
      federated_bundle_updated: { trust_domain: "partner.test", sequence: 3, roots: 2, refresh_hint_seconds: 300, expires_at: "2026-01-02T00:00:00.000Z" },
      federated_bundle_dropped: { trust_domain: "partner.test", refreshed_at: "2026-01-01T00:00:00.000Z", max_age_seconds: 86400, last_error: "federation: cannot reach it" },
      entry_created: { entry_id: "e1", spiffe_id: "spiffe://example.org/w", parent_id: "spiffe://example.org/tidegate/agent/n" },
      entry_deleted: { entry_id: "e1" },
      token_created: { node: "n", expires_at: "2026-01-01T00:00:00.000Z" },
    };
    expect(Object.keys(samples).sort()).toEqual([...SERVER_AUDIT_EVENTS].sort());
    for (const [event, fields] of Object.entries(samples)) l.info(event, fields);
    l.info("server_started", { trust_domain: "example.org" });
    expect(audit.events.length).toBe(Object.keys(samples).length);
    expect(log.lines.length).toBe(Object.keys(samples).length + 1);
  });
});
