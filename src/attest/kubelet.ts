/**
 * The kubelet attestor: `k8s:ns`, `k8s:sa`, `k8s:pod-label:KEY:VALUE`, `k8s:pod-name`,
 * `k8s:container-name`, `k8s:container-image`... (kubelet-pods.ts lists them) for a process in a
 * Kubernetes pod, from the kubelet's pod list, as SPIRE's k8s workload attestor does it: the pod
 * UID and container id come from the process's cgroup path (cgroup-path.ts), then the kubelet's
 * `GET /pods` on its secure port (10250) is asked which pod and container those are.
 *
 * Guarantees (docs/attestation.md, "Kubernetes pods from the kubelet"):
 * - No pod UID and container id in the cgroup path (or the container's cgroup not inside the
 *   pod's), or either cgroup directory not owned by root: no k8s selectors, no kubelet request
 *   (not an error; as cgroup.ts, a cgroup a user made names no pod).
 * - HTTPS only. The kubelet's certificate is verified against the CA file (re-read at each refresh).
 *   When the URL's host is a loopback address (the default, https://127.0.0.1:10250) only the chain
 *   is checked, as SPIRE does: kubelet serving certificates name the node, not 127.0.0.1. With a
 *   node name the URL is https://NODE:10250 and the name is checked too. Verification is skipped
 *   only with `insecureSkipVerify: true` (logged as a warning).
 * - `Authorization: Bearer <token>` with the token file re-read at each refresh (projected tokens
 *   rotate). The token is never logged, never in an error message or cause.
 * - The pod list is cached for `cacheTtlMs`; concurrent attestations share one request. A miss in a
 *   list fetched before the attestation began is refreshed at once; then the list is polled every
 *   `pollIntervalMs`, at most `maxPollAttempts` looks in all (SPIRE: 60 x 500 ms), for pods and
 *   containers the kubelet has not reported yet; still missing: `attest_pod_not_found`.
 * - Fails closed: kubelet unreachable, TLS failure, timeout or a status other than 200:
 *   `attest_kubelet_unavailable`; an answer over `maxBodyBytes`, not JSON, not a PodList, or with
 *   the pod malformed or listed twice: `attest_kubelet_bad_answer`; token or CA file unreadable or
 *   empty, or bad options: `attest_kubelet_config`. Failed fetches are not cached.
 */
import { readFile } from "node:fs/promises";
import ky from "ky";
import { quote, quoteUrl } from "../errors.ts";
import { httpsOrigin } from "../runtime/https-origin.ts";
import type { Logger } from "../runtime/log.ts";
import type { ProcessRef, WorkloadAttestor } from "./attestor.ts";
import { parseCgroupPath } from "./cgroup-path.ts";
import { rootOwnedCgroup } from "./cgroup.ts";
import { AttestError } from "./errors.ts";
import { findContainer, indexPodList, podSelectors, type PodIndex } from "./kubelet-pods.ts";
import type { ProcFs } from "./proc-fs.ts";
import { parseCgroupV2 } from "./proc-text.ts";

export const KUBELET_DEFAULTS = {
  port: 10250,
  host: "127.0.0.1",
  tokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
  caFile: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
  cacheTtlMs: 250,
  pollIntervalMs: 500,
  maxPollAttempts: 60,
  timeoutMs: 10_000,
  maxBodyBytes: 16 * 1024 * 1024,
} as const;

export interface KubeletOptions {
  /** Default `https://<nodeName>:10250`, or `https://127.0.0.1:10250` without a node name. */
  readonly url?: string;
  readonly nodeName?: string;
  readonly tokenFile?: string;
  readonly caFile?: string;
  /** Never verify the kubelet's certificate. Off unless set to true. */
  readonly insecureSkipVerify?: boolean;
  readonly cacheTtlMs?: number;
  readonly pollIntervalMs?: number;
  readonly maxPollAttempts?: number;
  readonly timeoutMs?: number;
  readonly maxBodyBytes?: number;
  readonly logger?: Logger;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

interface Fetched {
  /** When the request began (this.#now()). */
  readonly started: number;
  readonly index: PodIndex;
}

const LOOPBACK = /^(?:127(?:\.\d{1,3}){3}|\[::1\])$/;

function config(detail: string, cause?: unknown): AttestError {
  return new AttestError("attest_kubelet_config", `attest: kubelet: ${detail}`, cause === undefined ? undefined : { cause });
}

function count(name: string, value: number | undefined, fallback: number, min: number): number {
  const n = value ?? fallback;
  if (!Number.isSafeInteger(n) || n < min) throw config(`${name} must be a whole number of at least ${min}, not ${quote(String(n))}`);
  return n;
}

/** `code` of a failed fetch (ECONNREFUSED, UNABLE_TO_VERIFY_LEAF_SIGNATURE...) or its name. */
function reasonOf(e: unknown): string {
  const err = e as { code?: unknown; name?: unknown } | null;
  if (err?.name === "TimeoutError" || err?.name === "AbortError") return "timed out";
  if (typeof err?.code === "string" && /^[A-Za-z0-9_]{1,64}$/.test(err.code)) return err.code;
  return typeof err?.name === "string" ? err.name : "failed";
}

export class KubeletAttestor implements WorkloadAttestor {
  readonly name = "k8s";
  readonly url: URL;
  readonly #fs: ProcFs;
  readonly #mount: string;
  readonly #tokenFile: string;
  readonly #caFile: string;
  readonly #insecure: boolean;
  readonly #checkName: boolean;
  readonly #ttl: number;
  readonly #interval: number;
  readonly #attempts: number;
  readonly #timeout: number;
  readonly #maxBody: number;
  readonly #log: Logger | undefined;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #cache: Fetched | null = null;
  #inflight: { readonly started: number; readonly promise: Promise<Fetched> } | null = null;

  /** `mount` is the cgroup2 mount point (probeHost().cgroup2). Bad options: `attest_kubelet_config`. */
  constructor(fs: ProcFs, mount: string, opts: KubeletOptions = {}) {
    this.#fs = fs;
    this.#mount = mount;
    const text = opts.url ?? `https://${opts.nodeName ?? KUBELET_DEFAULTS.host}:${KUBELET_DEFAULTS.port}`;
    const o = httpsOrigin(text);
    if (o.why === "not_a_url") throw config(`${quoteUrl(text)} is not a URL`);
    if (o.url === null) throw config(`the kubelet URL ${quoteUrl(text)} must be https://HOST[:PORT] (no path, query or credentials)`);
    const url = o.url;
    this.url = new URL("/pods", url);
    this.#tokenFile = opts.tokenFile ?? KUBELET_DEFAULTS.tokenFile;
    this.#caFile = opts.caFile ?? KUBELET_DEFAULTS.caFile;
    this.#insecure = opts.insecureSkipVerify === true;
    this.#checkName = !LOOPBACK.test(url.hostname);
    this.#ttl = count("cacheTtlMs", opts.cacheTtlMs, KUBELET_DEFAULTS.cacheTtlMs, 0);
    this.#interval = count("pollIntervalMs", opts.pollIntervalMs, KUBELET_DEFAULTS.pollIntervalMs, 0);
    this.#attempts = count("maxPollAttempts", opts.maxPollAttempts, KUBELET_DEFAULTS.maxPollAttempts, 1);
    this.#timeout = count("timeoutMs", opts.timeoutMs, KUBELET_DEFAULTS.timeoutMs, 1);
    this.#maxBody = count("maxBodyBytes", opts.maxBodyBytes, KUBELET_DEFAULTS.maxBodyBytes, 1);
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
    this.#sleep = opts.sleep ?? ((ms) => Bun.sleep(ms));
    if (this.#insecure) this.#log?.warn("kubelet_tls_unverified", { url: this.url.href });
  }

  async attest(proc: ProcessRef): Promise<string[]> {
    const target = await this.#target(proc.pid);
    if (target === null) return [];
    const began = this.#now();
    let notBefore = -Infinity;
    for (let attempt = 1; ; attempt++) {
      const got = await this.#pods(notBefore);
      const found = findContainer(got.index, target.pod, target.container);
      if (found.kind === "found") return podSelectors(found.pod, found.container);
      if (attempt >= this.#attempts) {
        const what = found.kind === "no_pod" ? `pod ${target.pod}` : `container ${target.container} in pod ${target.pod}`;
        this.#log?.warn("kubelet_pod_not_found", { pid: proc.pid, pod_uid: target.pod, container_id: target.container, attempts: attempt });
        throw new AttestError("attest_pod_not_found", `attest: the kubelet lists no ${what} (pid ${proc.pid}, ${attempt} looks)`);
      }
      if (got.started < began) {
        notBefore = began; // a list from before this attestation: the pod may be newer; ask again now
        continue;
      }
      await this.#sleep(this.#interval);
      notBefore = this.#now();
    }
  }

  /** The pod UID and container id the process's cgroup names, when both cgroups are root's. */
  async #target(pid: number): Promise<{ pod: string; container: string } | null> {
    const path = parseCgroupV2(await this.#fs.readText(`/proc/${pid}/cgroup`), `/proc/${pid}/cgroup`);
    if (path === null) return null;
    const { pod, container } = parseCgroupPath(path);
    if (pod === null || container === null || !container.dir.startsWith(`${pod.dir}/`)) return null;
    if (!(await this.#rootOwned(pod.dir)) || !(await this.#rootOwned(container.dir))) return null;
    return { pod: pod.value, container: container.value };
  }

  #rootOwned(dir: string): Promise<boolean> {
    return rootOwnedCgroup(this.#fs, this.#mount, dir);
  }

  /** A pod list fetched no earlier than `notBefore`: the cached one while fresh, else a new one. */
  #pods(notBefore: number): Promise<Fetched> {
    const now = this.#now();
    const c = this.#cache;
    if (c !== null && c.started >= notBefore && now - c.started < this.#ttl) return Promise.resolve(c);
    const f = this.#inflight;
    if (f !== null && f.started >= notBefore) return f.promise;
    const promise: Promise<Fetched> = this.#fetch().then(
      (index) => {
        const got = { started: now, index };
        if (this.#cache === null || this.#cache.started <= now) this.#cache = got;
        return got;
      },
    );
    const mine = { started: now, promise };
    this.#inflight = mine;
    const clear = () => {
      if (this.#inflight === mine) this.#inflight = null;
    };
    promise.then(clear, clear);
    return promise;
  }

  async #fetch(): Promise<PodIndex> {
    const token = await this.#readToken();
    const tls: Record<string, unknown> = this.#insecure
      ? { rejectUnauthorized: false }
      : { ca: await this.#readCa(), rejectUnauthorized: true, ...(this.#checkName ? {} : { checkServerIdentity: () => undefined }) };
    const signal = AbortSignal.timeout(this.#timeout);
    const t0 = performance.now();
    let text: string;
    try {
      const res = await ky(this.url, {
        method: "GET",
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        retry: 0,
        timeout: false,
        throwHttpErrors: false,
        signal,
        fetch: (input: Request | URL | string, init?: RequestInit) => fetch(input, { ...init, keepalive: false, tls } as RequestInit),
      });
      if (res.status !== 200) {
        await res.body?.cancel().catch(() => {});
        throw this.#unavailable(`answered status ${res.status}`);
      }
      text = await this.#readBody(res);
    } catch (e) {
      if (e instanceof AttestError) throw e;
      throw this.#unavailable(reasonOf(e));
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new AttestError("attest_kubelet_bad_answer", `attest: ${this.url.href} answered with a body that is not JSON`);
    }
    const index = indexPodList(body);
    this.#log?.log("debug", "kubelet_pods_listed", { url: this.url.href, pods: index.size, ms: Math.round(performance.now() - t0) });
    return index;
  }

  /** Error without the original cause: a fetch error may hold the request and its headers. */
  #unavailable(why: string): AttestError {
    this.#log?.warn("kubelet_unavailable", { url: this.url.href, reason: why });
    return new AttestError("attest_kubelet_unavailable", `attest: kubelet ${this.url.href}: ${why}`);
  }

  async #readBody(res: Response): Promise<string> {
    const tooBig = () => new AttestError("attest_kubelet_bad_answer", `attest: ${this.url.href} answered with more than ${this.#maxBody} bytes`);
    const declared = Number(res.headers.get("content-length") ?? NaN);
    if (declared > this.#maxBody) {
      await res.body?.cancel().catch(() => {});
      throw tooBig();
    }
    const reader = res.body?.getReader();
    if (reader === undefined) return "";
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > this.#maxBody) {
        await reader.cancel().catch(() => {});
        throw tooBig();
      }
      chunks.push(value);
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks, total));
    } catch {
      throw new AttestError("attest_kubelet_bad_answer", `attest: ${this.url.href} answered with a body that is not UTF-8`);
    }
  }

  async #readToken(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.#tokenFile, "utf8");
    } catch (e) {
      throw config(`cannot read the token file ${quote(this.#tokenFile)} (${reasonOf(e)})`);
    }
    const token = text.trim();
    // A header value: visible ASCII only. The token itself is never put in a message.
    if (token === "" || !/^[\x21-\x7e]+$/.test(token)) throw config(`the token file ${quote(this.#tokenFile)} holds no token (empty, or not one line of visible ASCII)`);
    return token;
  }

  async #readCa(): Promise<string> {
    let pem: string;
    try {
      pem = await readFile(this.#caFile, "utf8");
    } catch (e) {
      throw config(`cannot read the CA file ${quote(this.#caFile)} (${reasonOf(e)})`);
    }
    if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw config(`the CA file ${quote(this.#caFile)} holds no PEM certificate`);
    return pem;
  }
}
