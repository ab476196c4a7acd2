// Issue 8 end to end (root; CI runs it): the built server and agent A (instance e2e-ix-a) intercept
// what workload `client` sends to a stand-in third-party API, an HTTPS server with its own test CA
// inside a network namespace, reached by name through A's dns.hosts. Real curl, Python's urllib and
// Node's fetch, started with `tidegate run`, call it over https:// and http://; the API receives the
// injected Authorization (the secret set with `tidegate secret set`), which no workload ever holds;
// each refusal (a placeholder toward another host, every smuggling shape, a Host that is not the
// SNI, an upstream leg that does not verify) is answered and logged. Agent B (instance e2e-ix-b)
// tells its backend who called in x-forwarded-client-cert, never a forged one. Stand:
// intercept-setup.ts; the API and B's backend: intercept-peers.ts; the workloads' programs:
// intercept-clients.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { startTidegate, waitFor } from "../helpers/processes.ts";
import { probeHost } from "../../src/runtime/host.ts";
import { NODE_FETCH, PY_RAW, PY_URLLIB } from "./intercept-clients.ts";
import { srcOf, type AuditLine } from "../helpers/audit-files.ts";
import { ADDR, BY_ADDRESS_PORT, BY_ADDRESS_TLS_PORT, ID, INSTANCE_A, SECRET, UNVERIFIED, setUp, tearDown, withStdin, type ApiRecord, type Stand } from "./intercept-setup.ts";

const T = 60_000;
const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && !process.env.CI) console.warn("e2e intercept: skipped (needs root and cgroup v2)");

/** Workloads run as nobody: a PATH of system folders only (python3 and node from /usr/bin). */
const WORKLOAD_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin" };
const CA_VARS = ["SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"];
const AUTH = `Bearer ${SECRET}`;
const AUTH_SHA = createHash("sha256").update(AUTH).digest("hex");
let s: Stand;
let seq = 0;
const testId = (what: string) => `${what}-${++seq}-${process.pid}`;

/** ARGV in workload `client` on A, as nobody; the pid is the one A's lines name. */
async function workload(argv: string[]): Promise<{ pid: number; out: string; err: string; code: number }> {
  const r = await tidegate(["run", ...s.flagsA, "--workload", "client", "--user", "nobody", "--", "sh", "-c", 'echo pid=$$; exec "$@"', "sh", ...argv], { env: WORKLOAD_ENV });
  const m = /^pid=(\d+)\n/.exec(r.stdout);
  if (m === null) throw new Error(`tidegate run exited ${r.code}: ${r.stdout}${r.stderr}`);
  return { pid: Number(m[1]), out: r.stdout.slice(m[0].length), err: r.stderr, code: r.code };
}

/** curl in the workload: no --cacert, the name pinned to the API's address; prints the body, then the status. */
async function curl(url: string, ...extra: string[]) {
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  const r = await workload(["curl", "-sS", "--max-time", "10", "--resolve", `${u.hostname}:${port}:${ADDR.api}`, "-w", "\n%{http_code}", ...extra, url]);
  const cut = r.out.lastIndexOf("\n");
  return { ...r, body: r.out.slice(0, cut), status: Number(r.out.slice(cut + 1)) };
}

/** The API's complete request with this X-Test-Id, once it has come. */
const apiGot = (id: string) => waitFor(`the API's record of ${id}`, () => s.api().find((r) => r.event === "request" && r.test_id === id));
const apiRecords = (id: string) => s.api().filter((r) => r.test_id === id);
/** An http_request event of A's audit log that `match` picks. */
const httpLine = (what: string, match: (l: AuditLine) => boolean) => waitFor(`A's http_request event for ${what}`, () => s.auditA().find((l) => l.type === "http_request" && match(l)));
/** A's conn_close for the connection of workload process `pid`. */
const egressLine = (pid: number) => waitFor(`A's conn_close for pid ${pid}`, () => s.auditA().find((l) => l.type === "conn_close" && srcOf(l).pid === pid));
const header = (r: ApiRecord, name: string) => r.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

/** What the API must have received from one workload request: the secret, once, over TLS to its name (sni: null for none), with the Host the workload sent. */
function expectInjected(r: ApiRecord, sni: string | null = "api.partner.test", host: string = sni ?? ""): void {
  expect(r.authorization).toEqual([AUTH]);
  expect(header(r, "authorization")).toEqual([AUTH]);
  expect(r.tls).toMatch(/^TLSv1\.[23]$/);
  expect(r.sni).toBe(sni);
  expect(header(r, "host")).toEqual([host]);
}

function expectNoSecret(text: string): void {
  expect(text).not.toContain(SECRET);
}

/** A workload's environment (NUL-separated): each of the four CA variables once, naming A's bundle; no secret. */
function expectCaEnvironment(environ: string): void {
  const entries = environ.split("\0").filter((e) => e !== "");
  for (const v of CA_VARS) expect(entries.filter((e) => e.startsWith(`${v}=`))).toEqual([`${v}=${s.bundle}`]);
  expectNoSecret(environ);
}

interface Spec {
  url: string;
  headers: Record<string, string>;
}

/** Three requests of one client: https, http (80 in, 443 out), and https with its own Authorization. */
function threeSpecs(client: string): { specs: Spec[]; ids: string[] } {
  const ids = [testId(`${client}-https`), testId(`${client}-http`), testId(`${client}-own-auth`)];
  const specs: Spec[] = [
    { url: `https://api.partner.test/${client}/https`, headers: { "X-Test-Id": ids[0]! } },
    { url: `http://api.partner.test/${client}/http`, headers: { "X-Test-Id": ids[1]! } },
    { url: `https://api.partner.test/${client}/own-auth`, headers: { "X-Test-Id": ids[2]!, Authorization: "Bearer mine" } },
  ];
  return { specs, ids };
}

/** The API got all three with the injected secret, the http one over TLS too; A logged each. */
async function expectThree(client: string, pid: number, ids: string[]): Promise<void> {
  const [https, http, own] = [await apiGot(ids[0]!), await apiGot(ids[1]!), await apiGot(ids[2]!)];
  for (const r of [https, http, own]) expectInjected(r);
  expect(JSON.stringify(own.headers)).not.toContain("mine");
  expect([https.path, http.path, own.path]).toEqual([`/${client}/https`, `/${client}/http`, `/${client}/own-auth`]);
  const lines = s.auditA().filter((l) => l.type === "http_request" && l.pid === pid);
  const common = { spiffe_id: ID.client, workload: "client", method: "GET", host: "api.partner.test", status: 200, outcome: "forwarded", injected: ["partner_token"], upstream: `${ADDR.api}:443` };
  expect(lines.find((l) => l.target === `/${client}/https`)).toMatchObject({ ...common, rule: "partner-api" });
  expect(lines.find((l) => l.target === `/${client}/http`)).toMatchObject({ ...common, rule: "partner-api-http" });
  expect(lines.find((l) => l.target === `/${client}/own-auth`)).toMatchObject({ ...common, rule: "partner-api" });
}

function expectClientResults(results: { status: number; body: string }[]): void {
  expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
  for (const r of results) expect((JSON.parse(r.body) as { authorization_sha256: string[] }).authorization_sha256).toEqual([AUTH_SHA]);
}

describe.skipIf(!can && !process.env.CI)("interception: secrets injected toward a third-party API, never held by the workload", () => {
  beforeAll(async () => {
    s = await setUp(mount ?? "/nonexistent");
  }, 2 * T);

  afterAll(async () => {
    await tearDown();
  }, T);

  test("the secret store lists partner_token by name only", async () => {
    const flags = ["--instance", INSTANCE_A, "--state-dir", `${s.dir}/a-state`];
    const list = await withStdin(["secret", "list", ...flags], "");
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME +CHANGED\npartner_token +\d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
    const json = JSON.parse((await withStdin(["secret", "list", "--json", ...flags], "")).stdout) as { secrets: Record<string, unknown>[] };
    expect(json.secrets).toHaveLength(1);
    expect(Object.keys(json.secrets[0]!).sort()).toEqual(["changed_at", "name"]);
    expect(json.secrets[0]!.name).toBe("partner_token");
    expectNoSecret(list.stdout + list.stderr + readFileSync(`${s.dir}/a-state/secrets/secrets.json`, "utf8"));
  }, T);

  test("curl over https:// trusts the interception CA through tidegate run's variables; the API gets the secret, curl never sees it", async () => {
    const id = testId("curl-https");
    const r = await workload(["sh", "-c", `tr '\\0' '\\n' </proc/self/environ; echo ---; exec curl -sS --max-time 10 --resolve api.partner.test:443:${ADDR.api} -H 'X-Test-Id: ${id}' -w '\\n%{http_code} %{ssl_verify_result}' https://api.partner.test/curl/https`]);
    const [environ, response] = r.out.split("---\n") as [string, string];
    expectCaEnvironment(environ.replaceAll("\n", "\0"));
    expect(response).toEndWith("\n200 0");
    expect(JSON.parse(response.slice(0, response.lastIndexOf("\n"))).authorization_sha256).toEqual([AUTH_SHA]);
    expectNoSecret(r.out + r.err);
    const rec = await apiGot(id);
    expectInjected(rec);
    expect(rec.path).toBe("/curl/https");
    expect(await httpLine(id, (l) => l.pid === r.pid)).toMatchObject({ spiffe_id: ID.client, workload: "client", method: "GET", host: "api.partner.test", target: "/curl/https", rule: "partner-api", status: 200, outcome: "forwarded", injected: ["partner_token"], upstream: `${ADDR.api}:443` });
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.api, port: 443, name: "api.partner.test" }, rule: "partner-api", action: "intercept", tls_terminated: true, requests: 1 });
    // without the variables, curl trusts the system roots only, and refuses the proxy's leaf
    const bare = await workload(["env", "-u", "SSL_CERT_FILE", "-u", "CURL_CA_BUNDLE", "curl", "-sS", "--max-time", "10", "--resolve", `api.partner.test:443:${ADDR.api}`, "-H", `X-Test-Id: ${id}-bare`, "https://api.partner.test/curl/bare"]);
    expect(bare.code).toBe(60);
    await Bun.sleep(300);
    expect(apiRecords(`${id}-bare`)).toEqual([]);
  }, T);

  test("curl: http:// on port 80 reaches the API on 443 over TLS, injected; an own Authorization is replaced", async () => {
    const id = testId("curl-http");
    const r = await curl("http://api.partner.test/curl/http", "-H", `X-Test-Id: ${id}`);
    expect(r.status).toBe(200);
    const rec = await apiGot(id);
    expectInjected(rec);
    expect(await httpLine(id, (l) => l.pid === r.pid)).toMatchObject({ target: "/curl/http", rule: "partner-api-http", status: 200, outcome: "forwarded", injected: ["partner_token"], upstream: `${ADDR.api}:443` });
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.api, port: 80, name: "api.partner.test" }, rule: "partner-api-http", tls_terminated: false, requests: 1 });
    for (const url of ["https://api.partner.test/curl/own-auth", "http://api.partner.test/curl/own-auth"]) {
      const own = testId("curl-own-auth");
      const o = await curl(url, "-H", `X-Test-Id: ${own}`, "-H", "Authorization: Bearer mine", "-H", "authorization: Bearer mine-too");
      expect(o.status).toBe(200);
      const got = await apiGot(own);
      expectInjected(got);
      expect(JSON.stringify(got.headers)).not.toContain("mine");
      expectNoSecret(o.out + o.err);
    }
  }, T);

  test("keep-alive: each request of one connection is injected, an own Authorization on the second replaced too", async () => {
    const [a, b] = [testId("keepalive"), testId("keepalive")];
    const resolve = ["--resolve", `api.partner.test:443:${ADDR.api}`];
    const r = await workload(["curl", "-sS", "--max-time", "10", ...resolve, "-H", `X-Test-Id: ${a}`, "https://api.partner.test/ka/1", "--next", "-sS", ...resolve, "-H", `X-Test-Id: ${b}`, "-H", "Authorization: Bearer mine", "https://api.partner.test/ka/2"]);
    expect(r.code).toBe(0);
    expectNoSecret(r.out + r.err);
    const [first, second] = [await apiGot(a), await apiGot(b)];
    expectInjected(first);
    expectInjected(second);
    expect([first.path, second.path]).toEqual(["/ka/1", "/ka/2"]);
    expect(JSON.stringify(second.headers)).not.toContain("mine");
    expect(second.conn).toBe(first.conn); // one upstream leg carried both
    expect(await egressLine(r.pid)).toMatchObject({ rule: "partner-api", tls_terminated: true, requests: 2 });
  }, T);

  test("Python's urllib: https://, http:// and an own Authorization; the secret only at the API", async () => {
    const { specs, ids } = threeSpecs("python");
    const r = await workload(["python3", "-c", PY_URLLIB, ADDR.api, JSON.stringify(specs)]);
    expectNoSecret(r.out + r.err);
    const out = JSON.parse(r.out) as { results: { status: number; body: string }[]; environ: string };
    expectClientResults(out.results);
    expectCaEnvironment(out.environ);
    await expectThree("python", r.pid, ids);
  }, T);

  test("Node's fetch: https://, http:// and an own Authorization; the secret only at the API", async () => {
    const { specs, ids } = threeSpecs("node");
    const r = await workload(["node", "-e", NODE_FETCH, ADDR.api, JSON.stringify(specs)]);
    expectNoSecret(r.out + r.err);
    const out = JSON.parse(r.out) as { results: { status: number; body: string }[]; environ: string };
    expectClientResults(out.results);
    expectCaEnvironment(out.environ);
    await expectThree("node", r.pid, ids);
  }, T);

  test("no secret in tidegate run's or the workload's environment or argv, nor in the agent's log", async () => {
    const id = testId("environ");
    const run = startTidegate(["run", ...s.flagsA, "--workload", "client", "--user", "nobody", "--", "sh", "-c", `curl -sS --max-time 10 --resolve api.partner.test:443:${ADDR.api} -H 'X-Test-Id: ${id}' https://api.partner.test/environ >/dev/null; echo done; exec sleep 5`], WORKLOAD_ENV);
    await waitFor("the workload's request", () => (run.output().includes("done") ? true : undefined));
    expectInjected(await apiGot(id));
    const pids = readFileSync(`${s.clientCgroup}/cgroup.procs`, "utf8").trim().split("\n").filter((p) => p !== "");
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of [String(run.proc.pid), ...pids]) {
      for (const file of ["environ", "cmdline"]) {
        const text = readFileSync(`/proc/${pid}/${file}`, "latin1");
        expectNoSecret(text);
        if (pid !== String(run.proc.pid) && file === "environ") expectCaEnvironment(text);
      }
    }
    await run.stop();
    expectNoSecret(s.agentAOutput());
    expectNoSecret(run.output());
    expectNoSecret(JSON.stringify(s.auditA()));
  }, T);

  test("a placeholder is swapped toward the rule that injects its secret; toward another host it is refused, and that API gets nothing", async () => {
    const ok = testId("placeholder-ok");
    const a = await curl("https://api.partner.test/placeholder", "-H", `X-Test-Id: ${ok}`, "-H", "X-Api-Key: tidegate-placeholder:partner_token");
    expect(a.status).toBe(200);
    expect(header(await apiGot(ok), "x-api-key")).toEqual([SECRET]);
    expect(await httpLine(ok, (l) => l.pid === a.pid)).toMatchObject({ rule: "partner-api", outcome: "forwarded", injected: ["partner_token"] });
    expectNoSecret(a.out + a.err);

    const plain = testId("other-plain"); // the other rule forwards, injecting nothing
    const b = await curl("https://other.partner.test/plain", "-H", `X-Test-Id: ${plain}`);
    expect(b.status).toBe(200);
    const rec = await apiGot(plain);
    expect([rec.sni, rec.authorization]).toEqual(["other.partner.test", []]);
    const plainLine = await httpLine(plain, (l) => l.pid === b.pid);
    expect(plainLine).toMatchObject({ rule: "other-api", outcome: "forwarded" });
    expect(plainLine.injected).toBeUndefined();

    const refused = testId("other-placeholder");
    const c = await curl("https://other.partner.test/steal", "-H", `X-Test-Id: ${refused}`, "-H", "X-Api-Key: tidegate-placeholder:partner_token");
    expect(c.status).toBe(403);
    expect(c.body).toBe("tidegate: placeholder_not_allowed\n");
    expect(await httpLine(refused, (l) => l.pid === c.pid)).toMatchObject({ spiffe_id: ID.client, method: "GET", host: "other.partner.test", rule: "other-api", status: 403, outcome: "refused", reason: "placeholder_not_allowed" });
    await Bun.sleep(300);
    expect(apiRecords(refused)).toEqual([]);
  }, T);

  test("a Host that is not the SNI: 421 host_sni_mismatch, the API gets nothing", async () => {
    const id = testId("host-sni");
    const r = await curl("https://api.partner.test/mismatch", "-H", `X-Test-Id: ${id}`, "-H", "Host: other.partner.test");
    expect(r.status).toBe(421);
    expect(r.body).toBe("tidegate: host_sni_mismatch\n");
    expect(await httpLine(id, (l) => l.pid === r.pid)).toMatchObject({ host: "other.partner.test", status: 421, outcome: "refused", reason: "host_sni_mismatch" });
    await Bun.sleep(300);
    expect(apiRecords(id)).toEqual([]);
  }, T);

  test("by address: http://IP reaches the API on 443 over TLS, injected, under a cidr rule; a Host naming another address: 421 host_address_mismatch", async () => {
    const id = testId("by-address");
    const url = `http://${ADDR.api}:${BY_ADDRESS_PORT}/by/address`;
    const r = await curl(url, "-H", `X-Test-Id: ${id}`);
    expect(r.status).toBe(200);
    expectInjected(await apiGot(id), null, `${ADDR.api}:${BY_ADDRESS_PORT}`); // no server_name: an IP literal may not be one (RFC 6066); the Host as sent
    expect(await httpLine(id, (l) => l.pid === r.pid)).toMatchObject({ host: ADDR.api, target: "/by/address", rule: "partner-api-addr", status: 200, outcome: "forwarded", injected: ["partner_token"], upstream: `${ADDR.api}:443` });
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.api, port: BY_ADDRESS_PORT, name: null }, rule: "partner-api-addr", requests: 1 });
    const other = testId("by-other-address");
    const o = await curl(url, "-H", `X-Test-Id: ${other}`, "-H", `Host: ${ADDR.host}`);
    expect(o.status).toBe(421);
    expect(o.body).toBe("tidegate: host_address_mismatch\n");
    expect(await httpLine(other, (l) => l.pid === o.pid)).toMatchObject({ host: ADDR.host, status: 421, outcome: "refused", reason: "host_address_mismatch" });
    await Bun.sleep(300);
    expect(apiRecords(other)).toEqual([]);
  }, T);

  test("by address over TLS: https://IP (no server_name) is terminated with a leaf for that address, and injected", async () => {
    const id = testId("by-address-tls");
    const r = await curl(`https://${ADDR.api}:${BY_ADDRESS_TLS_PORT}/by/address-tls`, "-H", `X-Test-Id: ${id}`);
    expect(r.status).toBe(200); // curl verified the interception leaf for the IP through CURL_CA_BUNDLE
    expectInjected(await apiGot(id), null, `${ADDR.api}:${BY_ADDRESS_TLS_PORT}`);
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.api, port: BY_ADDRESS_TLS_PORT, name: null }, rule: "partner-api-addr", tls_terminated: true, requests: 1 });
  }, T);

  // The re-originated leg must verify the API before a byte of the request (and the secret it
  // carries) goes out. The API is the same one the tests above reach; only the rule's trust differs.
  const unverified: [string, number, string, string][] = [
    ["the rule's ca is another test CA's", UNVERIFIED.otherCa, "unverified-other-ca", "upstream_tls_unverified"],
    ["no ca: the system roots", UNVERIFIED.systemRoots, "unverified-system-roots", "upstream_tls_unverified"],
    ["mtls: the API presents no SVID of server_id's trust domain", UNVERIFIED.mtls, "unverified-mtls", "peer_untrusted"],
  ];
  test("control for the tests below: the API records a connection's end with the bytes of HTTP it carried in", async () => {
    const id = testId("conn-end-control");
    const raw = `GET /control HTTP/1.1\r\nHost: api.partner.test\r\nX-Test-Id: ${id}\r\nConnection: close\r\n\r\n`;
    const { promise, resolve } = Promise.withResolvers<string>();
    let got = "";
    // straight from the test (no workload, no proxy) to the API in its namespace
    await Bun.connect({
      hostname: ADDR.api,
      port: 443,
      tls: { ca: readFileSync(join(s.dir, "pki", "ca.pem"), "utf8"), serverName: "api.partner.test" },
      socket: {
        handshake: (sock, authorized) => void (authorized ? sock.write(raw) : sock.end()),
        data: (_sock, d) => void (got += d.toString()),
        close: () => resolve(got),
        error: () => resolve(got),
      },
    });
    expect(await promise).toStartWith("HTTP/1.1 200 OK");
    const rec = await apiGot(id);
    const end = await waitFor("the API's conn_end of the control connection", () => s.api().find((x) => x.event === "conn_end" && x.conn === rec.conn));
    expect(end.bytes).toBe(raw.length);
  }, T);

  for (const [what, port, rule, reason] of unverified) {
    test(`an intercept rule whose upstream does not verify (${what}): 502 ${reason}; the API gets no byte of the request, no secret`, async () => {
      const id = testId(`unverified-${port}`);
      const mark = s.api().length;
      const connsBefore = Math.max(0, ...s.api().map((x) => x.conn ?? 0)); // the API's TLS connections so far
      const r = await curl(`https://api.partner.test:${port}/unverified`, "-H", `X-Test-Id: ${id}`, "-X", "POST", "--data", "body");
      expect(r.status).toBe(502);
      expect(r.body).toBe(`tidegate: ${reason}\n`);
      expectNoSecret(r.out + r.err);
      const line = await httpLine(id, (l) => l.pid === r.pid);
      expect(line).toMatchObject({ spiffe_id: ID.client, method: "POST", host: "api.partner.test", target: "/unverified", rule, status: 502, outcome: "refused", reason });
      expect(line.injected).toBeUndefined(); // nothing injected went out
      expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.api, port, name: "api.partner.test" }, rule, action: "intercept", tls_terminated: true, outcome: "refused", reason });
      // The leg did reach the API: a handshake the proxy broke off, or (mTLS verifies after the
      // handshake) a connection that ended; either way without a byte of HTTP.
      const fresh = (x: ApiRecord) => x.event === "handshake_failed" || (x.event === "conn_end" && x.conn > connsBefore);
      await waitFor("the API's record of the refused leg", () => (s.api().slice(mark).some(fresh) ? true : undefined));
      await Bun.sleep(300);
      const after = s.api().slice(mark);
      expect(after.filter((x) => x.event === "request" || x.event === "incomplete")).toEqual([]);
      const ended = after.filter((x) => x.event === "conn_end" && x.conn > connsBefore);
      expect(ended.map((x) => x.bytes)).toEqual(ended.map(() => 0));
      if (reason === "peer_untrusted") expect(ended).toHaveLength(1); // a completed handshake, then nothing
      expectNoSecret(JSON.stringify(after));
      expect(apiRecords(id)).toEqual([]);
    }, T);
  }

  test("smuggling, each kind after a good request on the same connection: 400 with the parser's code, logged, the connection closed; the API never gets the bad one as a request", async () => {
    const head = (id: string, method = "GET") => `${method} /smuggle HTTP/1.1\r\nHost: api.partner.test\r\nX-Test-Id: ${id}\r\n`;
    const kinds: [string, (id: string) => string, string][] = [
      ["conflicting Content-Length and Transfer-Encoding", (id) => `${head(id, "POST")}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, "http1_conflicting_framing"],
      ["a CR inside a header value", (id) => `${head(id)}X-A: a\rb\r\n\r\n`, "http1_bad_header_value"],
      ["an LF inside a header value", (id) => `${head(id)}X-A: a\nX-B: b\r\n\r\n`, "http1_bad_line_ending"],
      ["a duplicate Host", (id) => `${head(id)}Host: other.partner.test\r\n\r\n`, "http1_duplicate_host"],
      ["obsolete line folding", (id) => `${head(id)}X-A: a\r\n b\r\n\r\n`, "http1_obs_fold"],
      ["an invalid chunk size", (id) => `${head(id, "POST")}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`, "http1_bad_chunk_size"],
    ];
    const cases = kinds.map(([what, make, code]) => ({ what, code, good: testId("good"), bad: testId("bad"), make }));
    const conversations = cases.map((c) => [`GET /good HTTP/1.1\r\nHost: api.partner.test\r\nX-Test-Id: ${c.good}\r\n\r\n`, c.make(c.bad)]);
    const r = await workload(["python3", "-c", PY_RAW, ADDR.api, "80", JSON.stringify(conversations)]);
    const results = JSON.parse(r.out) as { responses: ({ status: string; body: string } | null)[]; closed: boolean }[];
    const lines = await waitFor("an egress line per connection", () => {
      const l = s.auditA().filter((x) => x.type === "conn_close" && srcOf(x).pid === r.pid);
      return l.length >= cases.length ? l : undefined;
    });
    const refusals = s.auditA().filter((l) => l.type === "http_request" && l.pid === r.pid && l.outcome === "refused");
    await Bun.sleep(300);
    const summary = cases.map((c, i) => ({
      what: c.what,
      good: results[i]!.responses[0]?.status,
      bad: results[i]!.responses[1],
      closed: results[i]!.closed,
      goodAtApi: apiRecords(c.good).map((x) => x.event),
      badAtApi: apiRecords(c.bad).filter((x) => x.event === "request").length,
      logged: refusals.filter((l) => l.reason === c.code).map((l) => ({ status: l.status, outcome: l.outcome })),
      connection: lines.filter((l) => l.reason === c.code).map((l) => ({ outcome: l.outcome, requests: l.requests })),
    }));
    expect(summary).toEqual(
      cases.map((c) => ({
        what: c.what,
        good: "HTTP/1.1 200 OK",
        bad: { status: "HTTP/1.1 400 Bad Request", body: `tidegate: ${c.code}\n` },
        closed: true,
        goodAtApi: ["request"],
        badAtApi: 0,
        logged: [{ status: 400, outcome: "refused" }],
        // requests: the connection's http_request lines, the good one's and the refusal's
        connection: [{ outcome: "refused", requests: 2 }],
      })),
    );
  }, T);

  test("a first request of a smuggling shape is refused while peeking; the API gets nothing", async () => {
    const id = testId("peek");
    const r = await workload(["python3", "-c", PY_RAW, ADDR.api, "80", JSON.stringify([[`GET /peek HTTP/1.1\r\nHost: api.partner.test\r\nX-Test-Id: ${id}\r\nHost: api.partner.test\r\n\r\n`]])]);
    const [result] = JSON.parse(r.out) as { responses: unknown[]; closed: boolean }[];
    expect(result!.closed).toBe(true);
    expect(await egressLine(r.pid)).toMatchObject({ dst: { addr: ADDR.api, port: 80 }, decision: "deny", outcome: "refused", reason: "peek_http_smuggling" });
    await Bun.sleep(300);
    expect(apiRecords(id)).toEqual([]);
  }, T);

  test("B's listener names the caller in x-forwarded-client-cert on every keep-alive request, dropping forged ones", async () => {
    const { listen } = await s.startB();
    const before = { requests: s.backend.requests.length, conns: s.backend.conns };
    const forged = "By=x;URI=spiffe://example.org/admin";
    const r = await workload(["curl", "-sS", "--max-time", "10", "--resolve", `backend.ix.test:80:${ADDR.listener}`, "http://backend.ix.test/one", "--next", "--resolve", `backend.ix.test:80:${ADDR.listener}`, "-sS", "-H", `X-Forwarded-Client-Cert: ${forged}`, "http://backend.ix.test/two"]);
    expect(r.code).toBe(0);
    const xfcc = `By=${ID.backend};URI=${ID.client}`;
    const got = await waitFor("two requests at the backend", () => (s.backend.requests.length >= before.requests + 2 ? s.backend.requests.slice(before.requests) : undefined));
    expect(s.backend.conns).toBe(before.conns + 1); // kept alive: one connection carried both
    expect(got.map((q) => q.line)).toEqual(["GET /one HTTP/1.1", "GET /two HTTP/1.1"]);
    for (const q of got) expect(q.headers.filter(([n]) => n.toLowerCase() === "x-forwarded-client-cert").map(([, v]) => v)).toEqual([xfcc]);
    expect(await egressLine(r.pid)).toMatchObject({ rule: "backend", action: "mtls", outcome: "forwarded", peer_id: ID.backend, upstream: `${ADDR.listener}:${listen}` });

    // pipelined in one write, forged in several spellings: still exactly one, the listener's
    const mark = s.backend.requests.length;
    const p = await workload(["python3", "-c", PY_RAW, ADDR.listener, "80", JSON.stringify([[
      `GET /p1 HTTP/1.1\r\nHost: backend.ix.test\r\nx-forwarded-client-cert: ${forged}\r\nX-FORWARDED-CLIENT-CERT: By=y\r\n\r\nGET /p2 HTTP/1.1\r\nHost: backend.ix.test\r\nX-Forwarded-Client-Cert: ${forged}\r\n\r\n`,
    ]]), "2"]);
    expect(p.code).toBe(0);
    const piped = await waitFor("the pipelined requests at the backend", () => (s.backend.requests.length >= mark + 2 ? s.backend.requests.slice(mark) : undefined));
    expect(piped.map((q) => q.line)).toEqual(["GET /p1 HTTP/1.1", "GET /p2 HTTP/1.1"]);
    for (const q of piped) expect(q.headers.filter(([n]) => n.toLowerCase() === "x-forwarded-client-cert").map(([, v]) => v)).toEqual([xfcc]);
    expect(piped[0]!.conn).toBe(piped[1]!.conn);
    const ib = await waitFor("B's inbound conn_close", () => s.auditB().find((l) => l.type === "conn_close" && l.side === "inbound" && l.outcome === "forwarded"));
    expect(ib).toMatchObject({ rule: "backend", src: { spiffe_id: ID.client } });
  }, T);

  // The audit log agent A wrote through the tests above; then A is killed (so these come last).
  /** `tidegate audit verify` as a user runs it: exit code and the JSON report. */
  const verify = async (args: string[]) => {
    const r = await tidegate(["audit", "verify", "--json", ...args]);
    return { code: r.code, report: JSON.parse(r.stdout || "{}") as { ok?: boolean; firstBreak?: { code: string; line: number } | null; checkpoints?: number }, stderr: r.stderr };
  };

  test("tidegate audit verify passes on the live log; each kind of tampering with a copy is found", async () => {
    const live = await verify(s.flagsA);
    expect(live.code).toBe(0);
    expect(live.report.ok).toBe(true);
    expect(live.report.checkpoints).toBeGreaterThan(1);
    const src = join(s.dir, "a-audit", "audit.jsonl");
    const checkpointsOf = (ls: string[]) => ls.map((l, i) => (l.includes('"type":"checkpoint"') ? i : -1)).filter((i) => i >= 0);
    const stateFile = join(s.dir, "a-state", "agent", "audit-checkpoint.json");
    const readState = () => (existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, "utf8")) as { seq: number }) : undefined);
    // The state follows the log's checkpoints at A's once-a-second sync: wait for it to reach the last one seen.
    const seen = readFileSync(src, "utf8").trimEnd().split("\n");
    const lastSeen = (JSON.parse(seen[checkpointsOf(seen).at(-1)!]!) as { seq: number }).seq;
    const state = await waitFor("A's state at its log's last checkpoint", () => (readState()?.seq ?? 0) >= lastSeen ? readState() : undefined);
    const lines = readFileSync(src, "utf8").trimEnd().split("\n"); // after the state: never behind it
    const checkpoints = checkpointsOf(lines);
    expect(checkpoints.length).toBeGreaterThan(1);
    const lastCp = checkpoints.findLast((i) => JSON.parse(lines[i]!).seq === state.seq)!;
    const firstCp = checkpoints[0]!;
    const edited = lines.findIndex((l, i) => i > 2 && i < lastCp && l.includes('"outcome":"forwarded"'));
    expect(edited).toBeGreaterThan(0);
    const cases: [string, (ls: string[]) => string[], string][] = [
      ["an edited field", (ls) => ls.map((l, i) => (i === edited ? l.replace('"outcome":"forwarded"', '"outcome":"refused"') : l)), "audit_prev_mismatch"],
      ["a deleted line", (ls) => ls.filter((_, i) => i !== edited), "audit_seq_gap"],
      ["an inserted line", (ls) => [...ls.slice(0, edited), ls[edited]!, ...ls.slice(edited)], "audit_seq_gap"],
      ["two lines swapped", (ls) => [...ls.slice(0, edited), ls[edited + 1]!, ls[edited]!, ...ls.slice(edited + 2)], "audit_seq_gap"],
      ["the tail cut before the last checkpoint", (ls) => ls.slice(0, lastCp - 1), "audit_tail_cut"],
      ["the tail cut exactly at an earlier checkpoint", (ls) => ls.slice(0, firstCp + 1), "audit_tail_cut"],
      ["a checkpoint's signature changed", (ls) => ls.map((l, i) => (i === firstCp ? l.replace(/"sig":"(.)/, (_m, c: string) => `"sig":"${c === "A" ? "B" : "A"}`) : l)), "audit_checkpoint_signature"],
    ];
    for (const [what, tamper, code] of cases) {
      const copy = mkdtempSync(join(s.dir, "tampered-"));
      writeFileSync(join(copy, "audit.jsonl"), `${tamper(lines).join("\n")}\n`);
      const r = await verify([...s.flagsA, "--state", join(s.dir, "a-state"), join(copy, "audit.jsonl")]);
      expect({ what, code: r.code, found: r.report.firstBreak?.code }).toEqual({ what, code: 1, found: code });
    }
  }, T);

  test("secret set and rm while A runs: the CLI tells A over agent.sock, so the very next request carries the change, audited at once; set back after", async () => {
    const changes = () => s.auditA().filter((l) => l.type === "secret_changed" && l.name === "partner_token");
    const ROTATED = `${SECRET}-rotated`;
    const request = async (what: string) => {
      const id = testId(what);
      const r = await curl(`http://api.partner.test/${what}`, "-H", `X-Test-Id: ${id}`);
      return { id, ...r };
    };
    // a request just before: A's store has looked at the file, and would not look again for a second on its own
    const before = await request("before-rotation");
    expect(before.status).toBe(200);
    expectInjected(await apiGot(before.id));
    const seen = changes().length;
    const set = await withStdin(["secret", "set", "partner_token", ...s.flagsA], `${ROTATED}\n`);
    expect(set.code).toBe(0);
    expect(set.stderr).toBe(""); // told: no note that the agent could not be
    expect(changes().slice(seen)).toMatchObject([{ change: "set" }]); // written before the agent answered, not by its 2 s watch
    const rotated = await request("rotated");
    expect(rotated.status).toBe(200);
    expect((await apiGot(rotated.id)).authorization).toEqual([`Bearer ${ROTATED}`]);

    const rm = await withStdin(["secret", "rm", "partner_token", ...s.flagsA], "");
    expect(rm.code).toBe(0);
    expect(rm.stderr).toBe("");
    expect(changes().slice(seen)).toMatchObject([{ change: "set" }, { change: "removed" }]);
    const gone = await request("removed");
    expect(gone.status).toBe(503);
    expect(gone.body).toContain("secret_missing");
    await Bun.sleep(300);
    expect(apiRecords(gone.id)).toEqual([]);

    const back = await withStdin(["secret", "set", "partner_token", ...s.flagsA], `${SECRET}\n`);
    expect(back.code).toBe(0);
    const after = await request("set-back");
    expect(after.status).toBe(200);
    expectInjected(await apiGot(after.id));
    expectNoSecret(set.stdout + set.stderr + rm.stdout + back.stdout + back.stderr);
    expect(set.stdout + back.stdout).not.toContain(ROTATED);
  }, T);

  test("killed with SIGKILL mid-traffic: the secret's value is in no output, log or audit file; what A wrote still verifies", async () => {
    const id = testId("killed");
    const r = await curl("https://api.partner.test/before-kill", "-H", `X-Test-Id: ${id}`);
    expect(r.status).toBe(200);
    // requests keep coming (placeholders swapped in) while the agent is killed
    const loop = `while :; do curl -s --max-time 2 --resolve api.partner.test:443:${ADDR.api} -H 'X-Api-Key: tidegate-placeholder:partner_token' https://api.partner.test/during-kill >/dev/null; done`;
    const slow = tidegate(["run", ...s.flagsA, "--workload", "client", "--user", "nobody", "--", "timeout", "6", "sh", "-c", loop], { env: WORKLOAD_ENV });
    await waitFor("requests of the loop at the API", () => (s.api().filter((x) => x.path === "/during-kill").length >= 3 ? true : undefined));
    await s.killA();
    await slow; // its requests now fail (closed: nothing bypasses the dead proxy) until timeout ends it
    expectNoSecret(s.allOutput());
    for (const dir of ["a-audit", "b-audit", "server-audit", "a-audit/server", "server-audit/server"]) {
      const full = join(s.dir, dir);
      if (!existsSync(full)) continue;
      for (const f of readdirSync(full)) if (f.endsWith(".jsonl")) expectNoSecret(readFileSync(join(full, f), "latin1"));
    }
    const after = await verify(s.flagsA);
    expect(after.code).toBe(0);
    expect(after.report.ok).toBe(true);
  }, T);
});
