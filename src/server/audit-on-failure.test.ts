// The server's audit.on_failure (audit-gate.ts): its audit log on a tmpfs of the test's own that
// fills up (as src/audit/sink/audit-log.test.ts does). With refuse (the default), attestation,
// SVID issuance and admin changes are refused with 503 audit_unavailable while the log cannot be
// written, reads go on, status says so, and all works again once there is room; with serve,
// issuance goes on.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { callServer } from "../agent/server-client.ts";
import { ServerError } from "../agent/errors.ts";
import { joinNode, newCsr, startTestServer, TEST_TD, TEST_YAML, tlsFetch, type ClientIdentity, type TestServer } from "./test-server.ts";

const T = 30_000;
const asRoot = process.getuid?.() === 0;

/** A server whose audit folder is a 64 KiB tmpfs; `fill` takes its free room, `free` gives it back. */
async function onSmallDisk(yaml: string) {
  let mnt: string | undefined;
  const t = await startTestServer({
    yaml,
    beforeStart: (places) => {
      mnt = places.auditDir;
      mkdirSync(mnt, { recursive: true });
      const r = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tidegate-test-srv-audit", mnt]);
      if (r.exitCode !== 0) throw new Error(`mount tmpfs: ${r.stderr.toString()}`);
    },
  });
  const filler = join(mnt!, "filler");
  return {
    t,
    fill: () => {
      try {
        writeFileSync(filler, Buffer.alloc(64 * 1024));
      } catch {
        // ENOSPC once the room is taken: what is wanted
      }
    },
    free: () => rmSync(filler, { force: true }),
    close: async () => {
      await t.server.stop();
      if (mnt !== undefined) Bun.spawnSync(["umount", mnt]);
      await t.close();
    },
  };
}

type Status = { audit: { healthy: boolean; error: string | null; on_failure: string; dir: string } };
const status = async (t: TestServer) => (await t.admin("GET", "/v1/status")).body as Status;

/** Creates join tokens (each one an audit event) until the log turns unhealthy: the page left in the active file fills first. */
async function writeUntilUnhealthy(t: TestServer): Promise<void> {
  for (let i = 0; i < 200 && (await status(t)).audit.healthy; i++) await t.admin("POST", "/v1/tokens", { node: `filler-${i}` });
  expect((await status(t)).audit.healthy).toBe(false);
}

async function until(what: string, ok: () => Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`not within ${ms} ms: ${what}`);
    await Bun.sleep(100);
  }
}

describe.skipIf(!asRoot && !process.env.CI)("server audit.on_failure: refuse (the default), its log on a disk that fills up", () => {
  let d: Awaited<ReturnType<typeof onSmallDisk>>;
  let node: ClientIdentity;
  let entryId: string;
  let token: string;
  beforeAll(async () => {
    if (!asRoot) throw new Error("CI runs these as root");
    d = await onSmallDisk(TEST_YAML);
    node = (await joinNode(d.t, "n1")).client;
    const entry = await d.t.admin("POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}/w`, parent_id: `spiffe://${TEST_TD}/tidegate/agent/n1`, selectors: ["unix:uid:1000"] });
    entryId = entry.body.id;
    token = (await d.t.admin("POST", "/v1/tokens", { node: "n2" })).body.token;
    d.fill();
    await writeUntilUnhealthy(d.t);
  }, T);
  afterAll(async () => d?.close());

  test("status reports the log unwritable, with its error and on_failure", async () => {
    expect((await status(d.t)).audit).toMatchObject({ healthy: false, error: "ENOSPC", on_failure: "refuse" });
    expect(d.t.logger.lines.find((l) => l.event === "audit_unwritable")).toMatchObject({ level: "error", error: "ENOSPC" });
  });

  test("admin changes are refused with 503 audit_unavailable; reads go on", async () => {
    const refused = [
      await d.t.admin("POST", "/v1/tokens", { node: "n3" }),
      await d.t.admin("POST", "/v1/entries", { spiffe_id: `spiffe://${TEST_TD}/w2`, parent_id: `spiffe://${TEST_TD}/tidegate/agent/n1`, selectors: ["unix:uid:1001"] }),
      await d.t.admin("DELETE", `/v1/entries/${entryId}`),
      await d.t.admin("POST", "/v1/ca/rotate", {}),
    ];
    for (const r of refused) {
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe("audit_unavailable");
      expect(r.body.error.message).toMatch(/^server: .* refused: the server's audit log cannot be written \(ENOSPC; audit\.on_failure: refuse\)/);
    }
    expect((await d.t.admin("GET", `/v1/entries/${entryId}`)).status).toBe(200);
    expect((await d.t.admin("GET", "/v1/entries")).body.entries.length).toBe(1);
  });

  test("attestation, node renewal and workload SVIDs are refused with 503 audit_unavailable (Retry-After); sync goes on", async () => {
    const ca = d.t.server.rootsPem();
    const join = await tlsFetch(`${d.t.server.publicUrl}/v1/attest/join-token`, { caPem: ca, body: { token, csr: (await newCsr()).csr } });
    const renew = await tlsFetch(`${d.t.server.apiUrl}/v1/node/renew`, { caPem: ca, client: node, body: { csr: (await newCsr()).csr } });
    const svid = await tlsFetch(`${d.t.server.apiUrl}/v1/svid`, { caPem: ca, client: node, body: { entry_id: entryId, csr: (await newCsr()).csr } });
    for (const r of [join, renew, svid]) {
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe("audit_unavailable");
      expect(r.headers.get("retry-after")).toBe("5");
    }
    const sync = await tlsFetch(`${d.t.server.apiUrl}/v1/sync`, { caPem: ca, client: node });
    expect(sync.status).toBe(200);
  });

  test("the agent's client reads it as a server error of status 503 (the agent backs off and retries)", async () => {
    const err = await callServer({
      origin: d.t.server.apiUrl,
      method: "POST",
      path: "/v1/svid",
      body: { entry_id: entryId, csr: (await newCsr()).csr },
      trust: { caPem: d.t.server.rootsPem(), serverId: `spiffe://${TEST_TD}/tidegate/server` },
      clientCert: { chainPem: node.certPem, keyPem: node.keyPem },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServerError);
    expect(err).toMatchObject({ code: "audit_unavailable", status: 503 });
  });

  test("once there is room again: healthy, and the refused join token still works (it was not consumed)", async () => {
    d.free();
    await until("the log healthy again", async () => (await status(d.t)).audit.healthy);
    const join = await tlsFetch(`${d.t.server.publicUrl}/v1/attest/join-token`, { caPem: d.t.server.rootsPem(), body: { token, csr: (await newCsr()).csr } });
    expect(join.status).toBe(200);
    expect((await d.t.admin("POST", "/v1/tokens", { node: "n3" })).status).toBe(201);
  }, T);
});

describe.skipIf(!asRoot && !process.env.CI)("server audit.on_failure: serve", () => {
  let d: Awaited<ReturnType<typeof onSmallDisk>>;
  beforeAll(async () => {
    if (!asRoot) throw new Error("CI runs these as root");
    d = await onSmallDisk(`${TEST_YAML}audit: { on_failure: serve }\n`);
    d.fill();
    await writeUntilUnhealthy(d.t);
  }, T);
  afterAll(async () => d?.close());

  test("issuance and admin changes go on while the log cannot be written; status says so", async () => {
    expect((await status(d.t)).audit).toMatchObject({ healthy: false, on_failure: "serve" });
    const joined = await joinNode(d.t, "n9");
    expect(joined.answer.spiffe_id).toBe(`spiffe://${TEST_TD}/tidegate/agent/n9`);
  }, T);
});
