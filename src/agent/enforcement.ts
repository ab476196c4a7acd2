/**
 * The agent's enforcement half (DESIGN.md sections 2 and 3): the policy in force, the workloads'
 * cgroups and what the kernel holds for each, and who a redirected connection's caller is.
 *
 * Guarantees:
 * - a workload's identity is the one registration entry whose selectors include
 *   `tidegate:workload:NAME` (until single-host mode applies `workloads:` as entries); none, or
 *   several, and the cgroup has no identity: its kernel share is empty (TCP goes to the listener,
 *   which refuses; UDP is denied) and it is logged;
 * - the kernel maps follow each good reload and each change of entries: new and changed entries
 *   are written before stale ones are deleted, so there is no moment without enforcement;
 * - until the first sync with the server the maps are left as they are: after a restart they
 *   hold what the last agent wrote (adopted pins), and nothing is loosened or emptied meanwhile;
 * - a rejected reload keeps the last good policy and is logged with its reason;
 * - a redirected caller must attest, as a process, to exactly its cgroup's workload identity
 *   (a process that exec'd another binary and lost its identity is refused, and recorded).
 */
import type { Audit } from "../audit/sink/audit-log.ts";
import { readRegularText } from "../runtime/bounded-read.ts";
import { untrustedFileReason } from "../runtime/trusted-file.ts";
import type { Entry } from "./wire.ts";
import type { Logger } from "../runtime/log.ts";
import { didYouMean, nearest } from "../policy/nearest.ts";
import { SpiffeId } from "../spiffe/index.ts";
import type { PolicyHolder } from "../policy/holder.ts";
import { kernelShare } from "../policy/kernel-share.ts";
import type { IpAddress } from "../policy/address.ts";
import { lpmEntries, type LpmEntry } from "../bpf/lpm-entries.ts";
import type { CaptureRecord, Identified } from "../proxy/egress-listener.ts";
import { matchEntry } from "../attest/match.ts";
import { TidegateError } from "../errors.ts";
import { DEFAULT_MAX_OPEN } from "../policy/model.ts";

/** What enforcement needs from the kernel side (src/bpf/capture.ts). */
export interface KernelCapture {
  /** Replaces what the maps hold for one cgroup: upserts first, then deletes what is stale. */
  syncCgroup(cgroupId: bigint, entries: readonly LpmEntry[]): void;
  removeCgroup(cgroupId: bigint): void;
  /** How many connections through the proxy one workload cgroup may hold open (the kernel refuses the next). */
  setMaxOpen(n: number): void;
  /** The record of a redirected connection from `peer` to the listener's `local` end; consumed once read. */
  lookupPeer(peer: { address: IpAddress; port: number }, local: { address: IpAddress; port: number }): CaptureRecord | null;
}

export interface WorkloadCgroups {
  workloads(): Map<string, bigint>;
}

export interface EnforcementOptions {
  readonly configPath: string;
  readonly holder: PolicyHolder;
  readonly capture: KernelCapture;
  readonly cgroups: WorkloadCgroups;
  /** The entries of the last sync with the server; null before the first one. */
  readonly entries: () => readonly Entry[] | null;
  /**
   * Selectors of a process (the agent's attestation); `startTime`, when the kernel captured it
   * with the pid, binds them to the process that started then (attestation.ts).
   */
  readonly attest: (pid: number, startTime?: number) => Promise<readonly string[]>;
  readonly logger: Logger;
  /** policy_loaded and policy_rejected go here too. */
  readonly audit: Audit;
}

const WORKLOAD_SELECTOR = "tidegate:workload:";

export class Enforcement {
  private synced = new Map<string, { id: bigint; key: string }>();

  /** The config file's last refused load, until a good one: the policy in force is an older one. */
  rejected: { readonly at: string; readonly error: string } | null = null;

  constructor(private readonly o: EnforcementOptions) {}

  /** The entries in force (the same list until a sync brings new ones); null before the first sync. */
  entries(): readonly Entry[] | null {
    return this.o.entries();
  }

  /** Reads the config file and swaps the policy in; on failure keeps the last good one. */
  reload(): boolean {
    let text: string;
    try {
      const untrusted = untrustedFileReason(this.o.configPath, process.geteuid?.() ?? 0);
      if (untrusted !== null) throw Object.assign(new Error(`not trusted: ${untrusted}`), { code: `not trusted: ${untrusted}` });
      // As at start (cli/agent.ts): a regular file of at most 4 MiB, never a FIFO waited on.
      text = readRegularText(this.o.configPath, "policy");
    } catch (e) {
      const error = `cannot read ${this.o.configPath}: ${(e as { code?: string }).code ?? String(e)}`;
      this.o.logger.error("policy_rejected", { file: this.o.configPath, error, kept: this.o.holder.policy !== null });
      this.o.audit.emit("policy_rejected", { reason: error, file: this.o.configPath, kept: this.o.holder.policy !== null });
      this.rejected = { at: new Date().toISOString(), error };
      return false;
    }
    const r = this.o.holder.reload(text, this.o.configPath);
    if (!r.ok) {
      this.o.logger.error("policy_rejected", { file: this.o.configPath, error: r.error.message, code: r.error.code, kept: r.kept !== null });
      this.o.audit.emit("policy_rejected", { reason: r.error.message, code: r.error.code, file: this.o.configPath, kept: r.kept !== null });
      this.rejected = { at: new Date().toISOString(), error: r.error.message };
      return false;
    }
    this.rejected = null;
    this.o.logger.info("policy_loaded", { file: this.o.configPath, egress_rules: r.policy.egress.length, inbound_rules: r.policy.inbound.length });
    this.o.audit.emit("policy_loaded", {
      rules: r.policy.egress.length + r.policy.inbound.length,
      sha256: new Bun.CryptoHasher("sha256").update(text).digest("hex"),
      file: this.o.configPath,
      egress_rules: r.policy.egress.length,
      inbound_rules: r.policy.inbound.length,
    });
    this.resync(true);
    return true;
  }

  /** The SPIFFE ID of workload `name`, or why it has none. */
  identityOf(name: string): { id: SpiffeId } | { id: null; why: string } {
    const selector = `${WORKLOAD_SELECTOR}${name}`;
    const entries = this.o.entries();
    if (entries === null) return { id: null, why: "the agent has not synced its entries with the server yet" };
    const matching = entries.filter((e) => e.selectors.includes(selector));
    const ids = [...new Set(matching.map((e) => e.spiffe_id))];
    if (ids.length === 0) {
      const names = [...new Set(entries.flatMap((e) => e.selectors.filter((x) => x.startsWith(WORKLOAD_SELECTOR)).map((x) => x.slice(WORKLOAD_SELECTOR.length))))];
      const near = nearest(name, names);
      return { id: null, why: `no registration entry has the selector ${selector}${didYouMean(near)}` };
    }
    if (ids.length > 1) return { id: null, why: `entries with the selector ${selector} name ${ids.length} identities: ${ids.join(", ")}` };
    return { id: SpiffeId.parse(ids[0]!) };
  }

  /** identityOf's answers per workload, for the entries they were computed from. */
  private idMemo: { entries: readonly Entry[] | null; ids: Map<string, string | null> } = { entries: null, ids: new Map() };

  /**
   * Whether workload `name` still has identity `id` under the entries in force: asked at each
   * request of an intercepted connection, so it is remembered until the entries change.
   */
  stillIdentifies(name: string, id: string): boolean {
    const entries = this.o.entries();
    if (entries !== this.idMemo.entries) this.idMemo = { entries, ids: new Map() };
    let now = this.idMemo.ids.get(name);
    if (now === undefined) {
      now = this.identityOf(name).id?.toString() ?? null;
      if (this.idMemo.ids.size < 4096) this.idMemo.ids.set(name, now);
    }
    return now === id;
  }

  /**
   * Whether selectors a process attested to (`identifyPid`) still match an entry of identity `id`
   * under the entries in force: asked at each message of a stdio server's conversation, so the
   * answer is kept until the entries change. An ambiguous match is a no.
   */
  holdsIdentity(selectors: readonly string[], id: string): () => boolean {
    let seen: readonly Entry[] | null | undefined;
    let held = true;
    return () => {
      const entries = this.o.entries();
      if (entries !== seen) {
        seen = entries;
        try {
          held = matchEntry([...(entries ?? [])], [...selectors])?.spiffe_id === id;
        } catch {
          held = false;
        }
      }
      return held;
    };
  }

  /** Brings the kernel maps in line with the policy, the entries and the cgroups that exist. */
  resync(force = false): void {
    const policy = this.o.holder.policy;
    this.o.capture.setMaxOpen(policy?.agent.maxConnectionsPerWorkload ?? DEFAULT_MAX_OPEN);
    if (this.o.entries() === null) return;
    const now = this.o.cgroups.workloads();
    for (const [name, cgroupId] of now) {
      const who = this.identityOf(name);
      const key = `${policy === null ? "none" : policy.file}|${this.o.holder.generation}|${who.id?.toString() ?? "-"}|${cgroupId}`;
      const before = this.synced.get(name);
      if (!force && before?.key === key) continue;
      let entries: LpmEntry[];
      if (policy === null || who.id === null) {
        entries = lpmEntries(cgroupId, [], () => 0, name);
        if (who.id === null && before?.key !== key) this.o.logger.warn("workload_without_identity", { workload: name, reason: who.why });
      } else {
        const index = new Map(policy.egress.map((r) => [r.name, r.index]));
        try {
          entries = lpmEntries(cgroupId, kernelShare(policy, who.id), (n) => index.get(n) ?? 0xffff, name);
        } catch (e) {
          if (!(e instanceof TidegateError)) throw e;
          this.o.logger.error("kernel_share_refused", { workload: name, error: e.message });
          entries = lpmEntries(cgroupId, [], () => 0, name);
        }
      }
      this.o.capture.syncCgroup(cgroupId, entries);
      this.synced.set(name, { id: cgroupId, key });
    }
    for (const [name, was] of this.synced) {
      if (now.get(name) === was.id) continue;
      this.o.capture.removeCgroup(was.id);
      this.synced.delete(name);
    }
  }

  /**
   * The identity a process attests to, by its selectors alone (the registration entry they match),
   * whatever cgroup it is in: the launching client of `tidegate run --mcp-stdio`. `uid` is the one the
   * kernel gave with the pid (SO_PEERCRED): a process of another uid is refused (`caller_changed`),
   * and so is one with another `startTime` than the one read with the pid (the pid was reused).
   */
  async identifyPid(pid: number, uid: number, startTime?: number): Promise<{ ok: true; id: string; selectors: readonly string[] } | { ok: false; reason: string; detail: string }> {
    let selectors: readonly string[];
    try {
      selectors = await this.o.attest(pid, startTime);
    } catch (e) {
      // Another start time at the pid than the one read with it (run.sock, at accept): the pid was reused.
      const reason = (e as { code?: unknown }).code === "attest_process_changed" ? "caller_changed" : "attestation_failed";
      return { ok: false, reason, detail: e instanceof Error ? e.message : String(e) };
    }
    // The pid came from SO_PEERCRED with this uid: another user's process now means the pid was reused.
    if (!selectors.includes(`unix:uid:${uid}`)) return { ok: false, reason: "caller_changed", detail: `process ${pid} no longer runs as uid ${uid}` };
    try {
      const matched = matchEntry([...(this.o.entries() ?? [])], [...selectors]);
      return matched === null ? { ok: false, reason: "no_identity", detail: `no registration entry matches the process's selectors` } : { ok: true, id: matched.spiffe_id, selectors };
    } catch (e) {
      return { ok: false, reason: "attestation_ambiguous", detail: e instanceof Error ? e.message : String(e) };
    }
  }

  /** Who a redirected connection's caller is (egress-listener.ts, step 2). */
  async identify(record: CaptureRecord): Promise<Identified> {
    // The cgroups of the last resync (prepareRun resyncs before a run starts): no directory read per
    // connection. A cgroup not synced yet has no kernel share, so it is refused here too.
    const workload = [...this.synced].find(([, s]) => s.id === record.cgroupId)?.[0] ?? null;
    if (workload === null) return { ok: false, workload: null, reason: "unknown_cgroup", detail: `cgroup ${record.cgroupId} is not a workload cgroup of this agent` };
    const expected = this.identityOf(workload);
    if (expected.id === null) return { ok: false, workload, reason: "no_identity", detail: expected.why };
    let selectors: readonly string[];
    try {
      selectors = await this.o.attest(record.tgid, record.startTime);
    } catch (e) {
      // A caller that exited before it could be attested (a client's last connections as it quits)
      // is refused like any other, under its own reason so that it does not read as a fault.
      const gone = (e as { code?: string }).code === "attest_no_process";
      return { ok: false, workload, reason: gone ? "caller_exited" : "attestation_failed", detail: e instanceof Error ? e.message : String(e) };
    }
    let matched: Entry | null;
    try {
      matched = matchEntry([...(this.o.entries() ?? [])], [...selectors]);
    } catch (e) {
      return { ok: false, workload, reason: "attestation_ambiguous", detail: e instanceof Error ? e.message : String(e) };
    }
    if (matched === null || matched.spiffe_id !== expected.id.toString()) {
      return {
        ok: false,
        workload,
        reason: "identity_mismatch",
        detail: `the process attests to ${matched?.spiffe_id ?? "no identity"}, its cgroup's workload is ${expected.id.toString()}`,
      };
    }
    return { ok: true, id: expected.id, workload };
  }
}
