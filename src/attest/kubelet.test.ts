import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { encodePem } from "../x509/index.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { AttestError } from "./errors.ts";
import { FakeProcFs } from "./fake-proc-fs.ts";
import { KubeletAttestor, KUBELET_DEFAULTS, type KubeletOptions } from "./kubelet.ts";
import { createAttestation } from "./system.ts";
import { DNS_APP, DNS_UID, LATE_APP, LATE_UID, WEB_APP, WEB_PENDING, WEB_SIDECAR, WEB_UID, latePod, otherPods, podCgroup, startKubelet, webPod, type KubeletStandIn } from "./test-kubelet.ts";

const MOUNT = "/sys/fs/cgroup";
const TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXNlcnZpY2UtYWNjb3VudA.SeCrEt-SiGnAtUrE-9f8e7d";
const dir = mkdtempSync(join(tmpdir(), "tidegate-kubelet-"));
const tokenFile = join(dir, "token");
const caFile = join(dir, "ca.crt");
let kubelet: KubeletStandIn;
const seen: string[] = []; // every error message (and inspection), searched for the token at the end
const loggers: ReturnType<typeof memoryLogger>[] = []; // so are all log lines

beforeAll(async () => {
  kubelet = await startKubelet({ token: TOKEN, pods: [webPod(), ...otherPods()] });
  writeFileSync(tokenFile, `${TOKEN}\n`);
  writeFileSync(caFile, kubelet.caPem);
});
afterAll(async () => {
  await kubelet.close();
  rmSync(dir, { recursive: true, force: true });
  const lines = loggers.flatMap((l) => l.lines.map((x) => JSON.stringify(x)));
  expect(seen.length).toBeGreaterThan(10);
  expect(lines.length).toBeGreaterThan(10);
  for (const s of [...seen, ...lines]) {
    expect(s).not.toContain(TOKEN);
    expect(s).not.toContain("SeCrEt");
  }
});
afterEach(() => {
  kubelet.pods = [webPod(), ...otherPods()];
  kubelet.status = null;
  kubelet.rawBody = null;
  kubelet.hang = false;
  kubelet.chunked = false;
  kubelet.token = TOKEN;
  writeFileSync(tokenFile, `${TOKEN}\n`);
});

/** A process in `cgroup`, with every directory of the path owned by `owner`. */
function world(pid: number, cgroup: string, owner = 0): FakeProcFs {
  const fs = new FakeProcFs().addProcess({ pid, cgroup });
  const segs = cgroup.split("/");
  for (let i = 2; i <= segs.length; i++) fs.set(join(MOUNT, segs.slice(0, i).join("/")), { stat: { isDirectory: true, uid: owner } });
  return fs;
}

function attestor(fs: FakeProcFs, extra: Partial<KubeletOptions> = {}) {
  const logger = memoryLogger();
  loggers.push(logger);
  const a = new KubeletAttestor(fs, MOUNT, { url: kubelet.url, tokenFile, caFile, pollIntervalMs: 10, maxPollAttempts: 3, logger, ...extra });
  return Object.assign(a, { logger });
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    seen.push(String(e), Bun.inspect(e), JSON.stringify(e));
    return e instanceof AttestError ? e.code : `not an AttestError: ${String(e)}`;
  }
  return "no error";
}

describe("kubelet attestor against a stand-in kubelet", () => {
  test("the process's pod and container: k8s:ns, k8s:sa, k8s:pod-label..., with the bearer token", async () => {
    const before = kubelet.auths.length;
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_SIDECAR)));
    const got = await a.attest({ pid: 10, startTime: 1000 });
    expect(got).toContain("k8s:ns:payments");
    expect(got).toContain("k8s:sa:web");
    expect(got).toContain("k8s:pod-label:app.kubernetes.io/name:web");
    expect(got).toContain("k8s:pod-name:web-7c9d8f6b5-x2x7q");
    expect(got).toContain("k8s:container-name:envoy");
    expect(got).toContain("k8s:container-image:docker.io/envoyproxy/envoy:v1.30.1");
    expect(got).not.toContain("k8s:container-name:app");
    expect(kubelet.auths.slice(before)).toEqual([`Bearer ${TOKEN}`]);
  });

  test("the pod list is cached: a second process within the TTL makes no request", async () => {
    let t = 1000;
    const fs = world(10, podCgroup(WEB_UID, WEB_APP));
    for (const [pid, cg] of [[11, podCgroup(DNS_UID, DNS_APP)]] as const) for (const [k, n] of world(pid, cg).nodes) fs.set(k, n);
    const a = attestor(fs, { now: () => t, cacheTtlMs: 250 });
    const before = kubelet.auths.length;
    expect(await a.attest({ pid: 10, startTime: 1000 })).toContain("k8s:container-name:app");
    t += 100;
    expect(await a.attest({ pid: 11, startTime: 1000 })).toContain("k8s:ns:kube-system");
    expect(kubelet.auths.length - before).toBe(1);
    t += 300; // expired
    expect(await a.attest({ pid: 10, startTime: 1000 })).toContain("k8s:container-name:app");
    expect(kubelet.auths.length - before).toBe(2);
  });

  test("concurrent attestations share one request", async () => {
    const fs = world(10, podCgroup(WEB_UID, WEB_APP));
    for (const [k, n] of world(11, podCgroup(DNS_UID, DNS_APP)).nodes) fs.set(k, n);
    const a = attestor(fs);
    const before = kubelet.auths.length;
    const [x, y] = await Promise.all([a.attest({ pid: 10, startTime: 1000 }), a.attest({ pid: 11, startTime: 1000 })]);
    expect(x).toContain("k8s:ns:payments");
    expect(y).toContain("k8s:ns:kube-system");
    expect(kubelet.auths.length - before).toBe(1);
  });

  test("a new pod missing from a fresh cached list: refreshed at once, no sleep", async () => {
    let t = 1000;
    const sleeps: number[] = [];
    const fs = world(10, podCgroup(WEB_UID, WEB_APP));
    for (const [k, n] of world(12, podCgroup(LATE_UID, LATE_APP)).nodes) fs.set(k, n);
    const a = attestor(fs, { now: () => t++, cacheTtlMs: 60_000, sleep: async (ms) => void sleeps.push(ms) });
    const before = kubelet.auths.length;
    await a.attest({ pid: 10, startTime: 1000 });
    kubelet.pods = [...kubelet.pods, latePod()];
    expect(await a.attest({ pid: 12, startTime: 1000 })).toContain("k8s:pod-name:late");
    expect(kubelet.auths.length - before).toBe(2);
    expect(sleeps).toEqual([]);
  });

  test("a pod appearing on the second poll", async () => {
    const sleeps: number[] = [];
    const a = attestor(world(12, podCgroup(LATE_UID, LATE_APP)), {
      sleep: async (ms) => {
        sleeps.push(ms);
        kubelet.pods = [...kubelet.pods, latePod()];
      },
    });
    const before = kubelet.auths.length;
    expect(await a.attest({ pid: 12, startTime: 1000 })).toContain("k8s:ns:default");
    expect(kubelet.auths.length - before).toBe(2);
    expect(sleeps).toEqual([10]);
  });

  test("a pod never listed: attest_pod_not_found after maxPollAttempts looks", async () => {
    const a = attestor(world(12, podCgroup(LATE_UID, LATE_APP)), { maxPollAttempts: 4, pollIntervalMs: 5 });
    const before = kubelet.auths.length;
    expect(await codeOf(a.attest({ pid: 12, startTime: 1000 }))).toBe("attest_pod_not_found");
    expect(kubelet.auths.length - before).toBe(4);
    expect(a.logger.lines.map((l) => l.event)).toContain("kubelet_pod_not_found");
  });

  test("a container the pod does not list (not started yet): attest_pod_not_found", async () => {
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_PENDING)), { maxPollAttempts: 2 });
    expect(await codeOf(a.attest({ pid: 10, startTime: 1000 }))).toBe("attest_pod_not_found");
  });

  test("no pod UID in the cgroup, a pod cgroup without a container, a user's cgroup: no selectors, no request", async () => {
    const before = kubelet.auths.length;
    const podDir = podCgroup(WEB_UID, WEB_APP).split("/").slice(0, -1).join("/");
    const table: [string, FakeProcFs][] = [
      ["a user session", world(20, "/user.slice/user-1000.slice/session-3.scope")],
      ["a docker container outside kubernetes", world(20, `/system.slice/docker-${WEB_APP}.scope`)],
      ["the pod's own cgroup", world(20, podDir)],
      ["a pod cgroup owned by a user", world(20, podCgroup(WEB_UID, WEB_APP), 1000)],
      ["a user's delegated subtree", world(20, `/user.slice/user-1000.slice/user@1000.service/kubepods/pod${WEB_UID}/${WEB_APP}`, 1000)],
    ];
    for (const [name, fs] of table) expect(`${name}: ${(await attestor(fs).attest({ pid: 20, startTime: 1000 })).length}`).toBe(`${name}: 0`);
    expect(kubelet.auths.length).toBe(before);
  });

  test("the token file is re-read at each refresh (rotation)", async () => {
    let t = 0;
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { now: () => (t += 1000) });
    await a.attest({ pid: 10, startTime: 1000 });
    kubelet.token = "rotated-token-2";
    writeFileSync(tokenFile, "rotated-token-2");
    await a.attest({ pid: 10, startTime: 1000 });
    expect(kubelet.auths.at(-1)).toBe("Bearer rotated-token-2");
  });
});

describe("kubelet attestor failures (fail closed)", () => {
  test("a wrong token (401): attest_kubelet_unavailable", async () => {
    kubelet.token = "another-token";
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_APP)));
    expect(await codeOf(a.attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    expect(a.logger.lines.map((l) => [l.event, l.reason])).toContainEqual(["kubelet_unavailable", "answered status 401"]);
  });

  test("a status other than 200, no answer, nothing listening: attest_kubelet_unavailable", async () => {
    kubelet.status = 500;
    expect(await codeOf(attestor(world(10, podCgroup(WEB_UID, WEB_APP))).attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    kubelet.status = null;
    kubelet.hang = true;
    expect(await codeOf(attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { timeoutMs: 200 }).attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    const closed = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { url: "https://127.0.0.1:1" });
    expect(await codeOf(closed.attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
  });

  test("a certificate from another CA: attest_kubelet_unavailable; verification is on by default", async () => {
    const other = await createTestCa();
    const otherCa = join(dir, "other-ca.crt");
    writeFileSync(otherCa, encodePem("CERTIFICATE", other.root.der));
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { caFile: otherCa });
    expect(await codeOf(a.attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    expect(a.logger.lines.find((l) => l.event === "kubelet_unavailable")?.reason).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    const explicit = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { caFile: otherCa, insecureSkipVerify: false });
    expect(await codeOf(explicit.attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    const skip = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { caFile: otherCa, insecureSkipVerify: true });
    expect(await skip.attest({ pid: 10, startTime: 1000 })).toContain("k8s:ns:payments");
    expect(skip.logger.lines.map((l) => l.event)).toContain("kubelet_tls_unverified");
  });

  test("a host name is checked against the certificate; 127.0.0.1 only by chain, as SPIRE", async () => {
    // The stand-in's certificate names node-1: by name "localhost" it is refused.
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { url: `https://localhost:${kubelet.port}` });
    expect(await codeOf(a.attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    expect(a.logger.lines.find((l) => l.event === "kubelet_unavailable")?.reason).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    const named = await startKubelet({ token: TOKEN, pods: [webPod()], dnsNames: ["localhost"] });
    try {
      const ca2 = join(dir, "ca2.crt");
      writeFileSync(ca2, named.caPem);
      const b = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { url: `https://localhost:${named.port}`, caFile: ca2 });
      expect(await b.attest({ pid: 10, startTime: 1000 })).toContain("k8s:ns:payments");
    } finally {
      await named.close();
    }
  });

  test("token and CA files: missing, empty, not a token, no certificate: attest_kubelet_config", async () => {
    const empty = join(dir, "empty");
    const twoLines = join(dir, "two-lines");
    writeFileSync(empty, "\n");
    writeFileSync(twoLines, `${TOKEN}\nmore ${TOKEN}\n`);
    const table: [string, Partial<KubeletOptions>, string][] = [
      ["missing token file", { tokenFile: join(dir, "nope") }, "cannot read the token file"],
      ["empty token file", { tokenFile: empty }, "holds no token"],
      ["two lines", { tokenFile: twoLines }, "holds no token"],
      ["missing CA file", { caFile: join(dir, "nope") }, "cannot read the CA file"],
      ["CA file without a certificate", { caFile: tokenFile }, "holds no PEM certificate"],
    ];
    const before = kubelet.auths.length;
    for (const [name, opts, words] of table) {
      const p = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), opts).attest({ pid: 10, startTime: 1000 });
      expect(`${name}: ${await codeOf(p)}`).toBe(`${name}: attest_kubelet_config`);
      expect(await p.catch((e: Error) => e.message)).toContain(words);
    }
    expect(kubelet.auths.length).toBe(before);
  });

  test("answers over the size cap, not JSON, not a PodList: attest_kubelet_bad_answer", async () => {
    const table: [string, string | Uint8Array, Partial<KubeletOptions>, string][] = [
      ["over the cap", JSON.stringify({ kind: "PodList", items: [webPod()] }), { maxBodyBytes: 1000 }, "more than 1000 bytes"],
      ["not JSON", "<html>oops</html>", {}, "not JSON"],
      ["not UTF-8", new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), {}, "not UTF-8"],
      ["not a PodList", JSON.stringify({ kind: "Status", status: "Failure" }), {}, "is not a PodList"],
    ];
    for (const [name, body, opts, words] of table) {
      kubelet.rawBody = body;
      kubelet.chunked = false;
      const p = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), opts).attest({ pid: 10, startTime: 1000 });
      expect(`${name}: ${await codeOf(p)}`).toBe(`${name}: attest_kubelet_bad_answer`);
      expect(await p.catch((e: Error) => e.message)).toContain(words);
    }
  });

  test("a chunked answer (no content-length) over the cap is cut off: attest_kubelet_bad_answer", async () => {
    kubelet.pods = Array.from({ length: 50 }, () => webPod());
    kubelet.chunked = true;
    const p = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { maxBodyBytes: 8192 }).attest({ pid: 10, startTime: 1000 });
    expect(await codeOf(p)).toBe("attest_kubelet_bad_answer");
    kubelet.pods = [webPod(), ...otherPods()];
    expect(await attestor(world(10, podCgroup(WEB_UID, WEB_APP))).attest({ pid: 10, startTime: 1000 })).toContain("k8s:ns:payments");
  });

  test("failed fetches are not cached", async () => {
    let t = 1000;
    const a = attestor(world(10, podCgroup(WEB_UID, WEB_APP)), { now: () => t, cacheTtlMs: 60_000 });
    kubelet.status = 503;
    expect(await codeOf(a.attest({ pid: 10, startTime: 1000 }))).toBe("attest_kubelet_unavailable");
    kubelet.status = null;
    t += 1;
    expect(await a.attest({ pid: 10, startTime: 1000 })).toContain("k8s:ns:payments");
  });
});

describe("kubelet attestor options", () => {
  test("defaults: https://127.0.0.1:10250, the service account's token, verification on", () => {
    const a = new KubeletAttestor(new FakeProcFs(), MOUNT);
    expect(a.url.href).toBe("https://127.0.0.1:10250/pods");
    expect(new KubeletAttestor(new FakeProcFs(), MOUNT, { nodeName: "node-1" }).url.href).toBe("https://node-1:10250/pods");
    expect(KUBELET_DEFAULTS.tokenFile).toBe("/var/run/secrets/kubernetes.io/serviceaccount/token");
    expect(KUBELET_DEFAULTS.maxBodyBytes).toBe(16 * 1024 * 1024);
  });

  test("bad options: attest_kubelet_config", () => {
    const table: [string, KubeletOptions][] = [
      ["http", { url: "http://127.0.0.1:10255" }],
      ["not a URL", { url: "kubelet" }],
      ["a path", { url: "https://127.0.0.1:10250/pods" }],
      ["credentials", { url: "https://u:p@127.0.0.1:10250" }],
      ["zero attempts", { maxPollAttempts: 0 }],
      ["negative interval", { pollIntervalMs: -1 }],
      ["fractional ttl", { cacheTtlMs: 0.5 }],
    ];
    for (const [name, opts] of table) {
      let code = "no error";
      try {
        new KubeletAttestor(new FakeProcFs(), MOUNT, opts);
      } catch (e) {
        code = e instanceof AttestError ? e.code : String(e);
        seen.push(String(e));
      }
      expect(`${name}: ${code}`).toBe(`${name}: attest_kubelet_config`);
    }
    expect(seen.join("\n")).not.toContain("u:p@"); // a password is never repeated
  });

  test("createAttestation adds it when configured, and fails closed through Attestation", async () => {
    const fs = world(10, podCgroup(WEB_UID, WEB_APP));
    const plain = await createAttestation({ cgroupName: "tidegate", cgroup2: MOUNT, fs }).attest(10);
    expect(plain.selectors.filter((s) => s.startsWith("k8s:"))).toEqual([`k8s:pod-uid:${WEB_UID}`]);
    const kube = createAttestation({ cgroupName: "tidegate", cgroup2: MOUNT, fs, kubelet: { url: kubelet.url, tokenFile, caFile } });
    const got = await kube.attest(10);
    expect(got.selectors).toContain("k8s:sa:web");
    expect(got.selectors.filter((s) => s === `k8s:pod-uid:${WEB_UID}`)).toHaveLength(1);
    kubelet.status = 401;
    const refused = createAttestation({ cgroupName: "tidegate", cgroup2: MOUNT, fs, kubelet: { url: kubelet.url, tokenFile, caFile } });
    expect(await codeOf(refused.attest(10))).toBe("attest_kubelet_unavailable");
  });
});
