// The remote scenario (issue 12; DESIGN.md section 1, second scenario) across real hosts made of
// network namespaces (stand: remote-setup.ts): an MCP client workload on A calls B's MCP server
// over mTLS in one trust domain and C's across two federated trust domains; identities are
// checked at both ends; C's root rotates under load; C's bundle endpoint goes away and A keeps
// its bundle exactly until the maximum age; and the client's processes hold no key, join token or
// secret value anywhere.
// Needs root (namespaces, cgroups, eBPF): CI runs it as root and it must not skip there;
// elsewhere it skips with a message.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { waitFor } from "../helpers/processes.ts";
import { describeHits, keyNeedles, pidsOfCgroup, scanPids, textNeedle, type Needle } from "../helpers/proc-scan.ts";
import type { AuditLine } from "../helpers/audit-files.ts";
import { C_HINT_S, ID, MAX_AGE_S, NAME, PORT, SUBNET, TD, setUp, tearDown, type ClientRun, type Stand } from "./remote-setup.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("remote.test.ts: CI must run as root");
if (!isRoot) console.warn("remote.test.ts: skipped (needs root: network namespaces, cgroups, eBPF)");

let s: Stand;

/**
 * Holds one TCP connection to argv[1]:argv[2] and sends an HTTP GET on it every 0.3 s, reading
 * each answer's head, for at most 60 s; prints "answered N, then cut (WHY)" once the connection
 * is gone, or "answered N, never cut".
 */
const PY_HELD_HTTP = `
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
n, why, end = 0, None, time.time() + 60
while time.time() < end:
    try:
        s.sendall(b'GET /health HTTP/1.1\\r\\nHost: c\\r\\n\\r\\n')
        d = s.recv(65536)
        if not d:
            why = 'closed'
            break
        n += 1
    except OSError as e:
        why = type(e).__name__
        break
    time.sleep(0.3)
print('answered %d, then cut (%s)' % (n, why) if why else 'answered %d, never cut' % n, flush=True)
`;

beforeAll(async () => {
  if (!isRoot) return;
  try {
    s = await setUp();
  } catch (e) {
    await tearDown();
    throw e;
  }
}, 180_000);

afterAll(async () => {
  await tearDown();
}, 60_000);

const srcOf = (l: AuditLine) => (l.src ?? {}) as { spiffe_id?: string; pid?: number; peer?: string };
const ok = (r: ClientRun, what: string) => {
  if (r.code !== 0 || r.results.some((x) => !x.ok)) throw new Error(`${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}\nA's audit:\n${s.audit("a").slice(-4).map((l) => JSON.stringify(l)).join("\n")}\n${s.allOutput().slice(-6000)}`);
  return r;
};
const echo = (message: string) => ({ op: "call" as const, name: "echo", args: { message } });
const echoed = (r: ClientRun) => JSON.stringify(r.results.find((x) => x.name === "echo")?.content ?? null);

/** The newest A conn_close of rule RULE that came after `after` lines. */
const egressClose = (rule: string, after: number) => waitFor(`A's conn_close of ${rule}`, () => s.audit("a").slice(after).findLast((l) => l.type === "conn_close" && l.rule === rule));
/** A's http_request events of rule RULE after `after` lines, once the connection closed. */
const egressRequests = async (rule: string, after: number) => {
  await egressClose(rule, after);
  return s.audit("a").slice(after).filter((l) => l.type === "http_request" && l.rule === rule);
};
/** ORG's inbound conn_close with connection id ID. */
const inboundClose = (org: "b" | "c", id: unknown) => waitFor(`${org}'s inbound conn_close ${String(id)}`, () => s.audit(org).find((l) => l.type === "conn_close" && l.side === "inbound" && l.conn_id === id));

describe.skipIf(!isRoot)("the remote scenario, across network namespaces", () => {
  test("A's client calls B's MCP server over mTLS as its own identity; B's tool filter applies; both ends log one connection id", async () => {
    const before = s.audit("a").length;
    const r = ok(await s.runClient("client", NAME.b, [{ op: "list" }, echo("over the bridge")]), "client to B");
    const tools = r.results.find((x) => x.op === "list")!.tools!;
    expect(tools).toContain("echo");
    expect(tools).not.toContain("get-tiny-image"); // B's inbound rule hides it
    expect(echoed(r)).toContain("over the bridge");
    const requests = await egressRequests("to-b", before);
    expect(requests.length).toBeGreaterThanOrEqual(3); // initialize, the list, the call (and the notification)
    for (const q of requests) expect(q).toMatchObject({ spiffe_id: ID.client, peer_id: ID.everything, injected: ["b_token"], outcome: "forwarded" });
    const legs = [...new Set(requests.map((q) => q.upstream_conn_id))];
    expect(legs.every((id) => /^[0-9a-f]{32}$/.test(String(id)))).toBe(true);
    const ib = await inboundClose("b", legs[0]);
    expect(ib).toMatchObject({ rule: "everything", decision: "allow" });
    expect(srcOf(ib).spiffe_id).toBe(ID.client);
    expect(String(srcOf(ib).peer)).toStartWith(`${SUBNET}.1:`); // it came from host A
  }, 60_000);

  test("B's server-everything listens on every interface, but from A only B's listener reaches it", async () => {
    const A = s.hosts.host("a");
    const B = s.hosts.host("b");
    const direct = Bun.spawnSync(A.nsenterArgv(["curl", "-sS", "-o", "/dev/null", "--max-time", "5", `http://${B.address}:${PORT.backend}/mcp`]));
    expect(direct.exitCode).toBe(7); // curl: could not connect (reset by B's nftables rule)
    const onB = Bun.spawnSync(B.nsenterArgv(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", `http://${B.address}:${PORT.backend}/mcp`]));
    expect(onB.exitCode).toBe(0); // the same address from B itself: the server is there
    expect(Number(onB.stdout.toString())).toBeGreaterThan(0);
  }, 30_000);

  test("a workload on A without an allowed identity is let out by A and refused by B", async () => {
    const before = { a: s.audit("a").length, b: s.audit("b").length };
    const r = await s.runClient("other", NAME.b, [{ op: "list" }]);
    expect(r.code).toBe(2); // the MCP handshake never completed
    expect(r.results[0]).toMatchObject({ op: "connect", ok: false });
    const eg = await egressClose("to-b", before.a);
    expect(srcOf(eg).spiffe_id).toBe(ID.other);
    const ib = await waitFor("B's refusal of the other identity", () => s.audit("b").slice(before.b).find((l) => l.type === "conn_close" && l.side === "inbound" && l.reason === "client_not_allowed"));
    expect(ib).toMatchObject({ rule: "everything", decision: "deny" });
    expect(srcOf(ib).spiffe_id).toBe(ID.other);
  }, 60_000);

  test("A's client calls C's MCP server across trust domains; each side verified the other against its own trust domain's bundle", async () => {
    const before = s.audit("a").length;
    const r = ok(await s.runClient("client", NAME.c, [echo("to the partner")]), "client to C");
    expect(echoed(r)).toContain("to the partner");
    const requests = await egressRequests("to-c", before);
    for (const q of requests) expect(q).toMatchObject({ spiffe_id: ID.client, peer_id: ID.tools, outcome: "forwarded" });
    const ib = await inboundClose("c", requests[0]!.upstream_conn_id);
    expect(ib).toMatchObject({ rule: "tools", decision: "allow" });
    expect(srcOf(ib).spiffe_id).toBe(ID.client);
    // bundles are kept per trust domain: A holds partner.test's apart from its own, and C example.org's
    const a = await s.agentStatus("a");
    expect(a.federation.map((f) => f.trust_domain)).toEqual([TD.partner]);
    const c = await s.agentStatus("c");
    expect(c.federation.map((f) => f.trust_domain)).toEqual([TD.ours]);
  }, 60_000);

  test("a server on C presenting an unexpected SPIFFE ID is refused by A before any byte of the request leaves", async () => {
    const before = { a: s.audit("a").length, c: s.audit("c").length };
    const r = await s.runClient("client", NAME.impostor, [{ op: "list" }]);
    expect(r.code).toBe(2);
    const eg = await egressClose("to-impostor", before.a);
    expect(eg).toMatchObject({ decision: "allow", outcome: "refused", reason: "peer_id_mismatch", detail: `the upstream is ${ID.impostor}, the rule wants ${ID.tools}` });
    // C's impostor listener forwarded nothing: no MCP request reached it
    expect(s.audit("c").slice(before.c).filter((l) => l.rule === "impostor" && (l.type === "tool_call" || Number(l.bytes_up ?? 0) > 0))).toEqual([]);
  }, 60_000);

  test("after `server rotate-ca --root` on C, A trusted the new root before C signed with it, and calls keep working", async () => {
    const rotated = JSON.parse(await s.cli("cs", ["server", "rotate-ca", "--root", "--json"])) as { roots: { serial: string; sha256: string; state: string; activate_at?: string }[] };
    const pending = rotated.roots.find((r) => r.state === "pending")!;
    expect(pending.activate_at).toBeDefined();
    const activateAt = Date.parse(pending.activate_at!);
    // A logs the bundle update with the roots' fingerprints
    const update = await waitFor(
      "A to trust C's new root",
      () => s.log("a").find((l) => l.event === "federated_bundle_updated" && l.trust_domain === TD.partner && (l.roots as string[]).includes(pending.sha256)),
      C_HINT_S * 3 * 1000,
      100,
    );
    expect(Date.parse(String(update.time))).toBeLessThan(activateAt);
    // C's agent gets its SVIDs under the new root once they rotate (they live 30 s)
    const newRoot = (await s.cli("cs", ["server", "bundle", "--pem"])).split(/(?<=-----END CERTIFICATE-----\n)/).map((p) => new X509Certificate(p)).find((c) => c.fingerprint256.replaceAll(":", "").toLowerCase() === pending.sha256)!;
    expect(newRoot).toBeDefined();
    await waitFor(
      "C's tools SVID under the new root",
      () => {
        const dir = join(s.dir, "c-state", "agent", "svids");
        for (const f of readdirSync(dir).filter((n) => n.endsWith(".pem"))) {
          const certs = readFileSync(join(dir, f), "utf8").split(/(?<=-----END CERTIFICATE-----\n)/).filter((p) => p.includes("BEGIN")).map((p) => new X509Certificate(p));
          if (certs[0]!.subjectAltName?.includes(ID.tools) && certs.at(-1)!.verify(newRoot.publicKey)) return true;
        }
        return undefined;
      },
      45_000,
      250,
    );
    const before = s.audit("a").length;
    const r = ok(await s.runClient("client", NAME.c, [echo("after the rotation")]), "client to C after the root rotation");
    expect(echoed(r)).toContain("after the rotation");
    expect((await egressRequests("to-c", before)).every((q) => q.peer_id === ID.tools && q.outcome === "forwarded")).toBe(true);
  }, 90_000);

  test("while C's bundle endpoint is down A keeps C's bundle until its maximum age, then refuses C, and cuts a raw mTLS connection to C held open across it; a new fetch restores it", async () => {
    // A connection held open over mTLS to C (rule to-c-raw, spliced), asking C's backend every 0.3 s.
    const C = s.hosts.host("c");
    const auditedBefore = { a: s.audit("a").length, c: s.audit("c").length };
    const held = s.runOnA(["python3", "-c", PY_HELD_HTTP, C.address, String(PORT.impostor)]);
    await waitFor("A's conn_open of the held connection", () => s.audit("a").slice(auditedBefore.a).find((l) => l.type === "conn_open" && l.rule === "to-c-raw"), 15_000);
    await s.stopServerC();
    const stoppedAt = Date.now();
    ok(await s.runClient("client", NAME.c, [echo("server C is down")]), "client to C with C's server down");
    const a = await s.agentStatus("a");
    expect(a.federation.find((f) => f.trust_domain === TD.partner)?.expired).toBe(false);
    await waitFor(
      "A to stop trusting partner.test",
      async () => ((await s.agentStatus("a")).federation.some((f) => f.trust_domain === TD.partner && !f.expired) ? undefined : true),
      (MAX_AGE_S + 10) * 1000,
      200,
    );
    const heldFor = (Date.now() - stoppedAt) / 1000;
    // The bundle gone, the held connection is cut at whichever end dropped the other's bundle
    // first: A (the upstream's authority, peer_untrusted) or C (the client's, client_untrusted).
    const cut = await waitFor(
      "the held connection to be cut for its bundle",
      () =>
        s.audit("a").slice(auditedBefore.a).find((l) => l.type === "conn_close" && l.rule === "to-c-raw" && l.outcome === "terminated" && l.reason === "peer_untrusted") ??
        s.audit("c").slice(auditedBefore.c).find((l) => l.type === "conn_close" && l.rule === "impostor" && l.outcome === "terminated" && l.reason === "client_untrusted"),
      15_000,
    );
    expect(String(cut.detail)).toMatch(/^the bundles in force no longer hold the authority that vouched for (the upstream )?spiffe:\/\/\S+ \(a bundle change\)$/);
    const r0 = await held;
    expect(r0.stdout).toMatch(/^answered \d+, then cut \(.*\)\n$/);
    expect(Number(/^answered (\d+)/.exec(r0.stdout)![1])).toBeGreaterThan(0);
    // the last fetch was at most half a hint before the stop, and A stops within a sync of expiry
    expect(heldFor).toBeGreaterThan(MAX_AGE_S - C_HINT_S / 2 - 1);
    expect(heldFor).toBeLessThan(MAX_AGE_S + 3);
    const status = await tidegate(["server", "status", "--json", ...s.flags.s]);
    expect(status.code).toBe(1);
    expect((JSON.parse(status.stdout) as { federation: { trust_domain: string; state: string }[] }).federation).toMatchObject([{ trust_domain: TD.partner, state: "dropped" }]);
    const before = s.audit("a").length;
    const r = await s.runClient("client", NAME.c, [{ op: "list" }]);
    expect(r.code).toBe(2);
    expect(await egressClose("to-c", before)).toMatchObject({ outcome: "refused", reason: "no_bundle", detail: `no bundle for trust domain ${TD.partner}` });

    await s.startServerC();
    // both sides fetch again: S from C's endpoint (A trusts partner.test), C from S's (C trusts example.org)
    for (const [org, td] of [["a", TD.partner], ["c", TD.ours]] as const) {
      await waitFor(`${org} to trust ${td} again`, async () => ((await s.agentStatus(org)).federation.some((f) => f.trust_domain === td && !f.expired) ? true : undefined), 60_000, 200);
    }
    ok(await s.runClient("client", NAME.c, [echo("C is back")]), "client to C after C's server came back");
  }, 120_000);

  test("no process of A's MCP client workload holds a private key, the join token or the injected secret, in its environment, open files or memory", async () => {
    const marker = `tg-remote-marker-${crypto.randomUUID()}`;
    const held = await s.holdClient(NAME.b, [echo(marker)]);
    try {
      expect(held.before).toMatchObject([{ op: "call", name: "echo", ok: true }]);
      // the workload's processes: everything in its cgroup
      const rel = readFileSync(`/proc/${held.pid}/cgroup`, "utf8").split("\n").find((l) => l.startsWith("0::"))!.slice(3);
      expect(rel).toEndWith("/workloads/client");
      const mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].find((m) => existsSync(join(m, rel, "cgroup.procs")))!;
      const pids = pidsOfCgroup(join(mount, rel));
      expect(pids).toContain(held.pid);

      const needles: Needle[] = [...textNeedle("marker", marker), ...textNeedle("secret b_token", s.secret), ...textNeedle("A's join token", readFileSync(join(s.dir, "a.token"), "utf8").trim())];
      const keyFiles = (root: string) => (readdirSync(root, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[]).filter((e) => e.isFile() && /\.key$|key\.pem$/.test(e.name)).map((e) => join(e.parentPath, e.name));
      let keys = 0;
      for (const f of [...keyFiles(join(s.dir, "a-state")), ...keyFiles(join(s.dir, "s-state"))]) {
        const pem = readFileSync(f, "utf8");
        if (!pem.includes("PRIVATE KEY")) continue;
        needles.push(...keyNeedles(f.slice(s.dir.length + 1), pem));
        keys += 1;
      }
      expect(keys).toBeGreaterThanOrEqual(4); // A's node key, two workload SVID keys, S's CA keys

      const { reports, gone } = scanPids(pids, needles);
      expect(gone).toEqual([]);
      const hits = describeHits(reports);
      // the positive control: the marker the client really holds is found in its memory
      const isMarker = (h: string) => /^pid \d+: marker(: utf-16le)? in /.test(h);
      expect(hits.some((h) => isMarker(h) && / in memory /.test(h))).toBe(true);
      expect(hits.filter((h) => !isMarker(h))).toEqual([]);
      const client = reports.find((r) => r.pid === held.pid)!;
      expect(client.memory.bytesRead).toBeGreaterThan(16 << 20);
    } finally {
      const end = await held.release();
      expect(end.code).toBe(0);
    }
  }, 120_000);
});
