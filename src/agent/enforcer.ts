/**
 * Starts and runs the agent's enforcement (DESIGN.md sections 2 and 3): kernel capture for the
 * instance, the policy from the config file (reloaded on SIGHUP and when the file changes), the
 * egress listener (with the SVIDs and bundles of the identity half for mTLS, and the interception
 * CA and secret store for intercept), the inbound listeners of the policy (inbound-manager.ts),
 * deny events from the kernel logged with the process's identity, and the workload cgroups
 * `tidegate run` asks for (with the workloads' CA bundle). Every audit event of the enforcing
 * half passes through RuleHits (rule-hits.ts) on its way to the log: per-rule counts and recent
 * denies for `tidegate status`.
 *
 * A graceful stop drains first (`drain`, then `stop`): the ports close while the capture stays
 * pinned, connections in flight get `agent.drain_timeout` to finish, the rest are cut and recorded.
 *
 * Where the host cannot capture (no cgroup v2, not root, no libbpf or eBPF), `startEnforcer`
 * returns why and the agent runs its identity half alone; `tidegate run` is then refused with that
 * reason. Pins of another layout stop the agent (CaptureError): it never runs beside enforcement
 * it does not understand.
 */
import { closedRule, following, gateRule, openGate } from "../proxy/mcp/gate-rule.ts";
import { SecretWatch } from "./secret-watch.ts";
import type { Audit } from "../audit/sink/audit-log.ts";
import { existsSync } from "node:fs";
import { watchFile, type FileWatch } from "../runtime/file-watch.ts";
import type { Places } from "../runtime/instance.ts";
import type { Logger } from "../runtime/log.ts";
import { probeHost } from "../runtime/host.ts";
import { PolicyHolder } from "../policy/holder.ts";
import { Capture, CaptureError } from "../bpf/capture.ts";
import { BpfError } from "../bpf/errors.ts";
import type { TgEvent } from "../bpf/layout.ts";
import { startEgressListener, type EgressListener } from "../proxy/egress-listener.ts";
import { createAttestation } from "../attest/system.ts";
import { openKernelPrint, type KernelPrint } from "./kernel-print.ts";
import { Enforcement } from "./enforcement.ts";
import { NameCache } from "../policy/name-cache.ts";
import { createDnsLookup } from "../runtime/dns-client.ts";
import { systemResolvers } from "../runtime/resolv-conf.ts";
import type { AgentCore } from "./agent-core.ts";
import { chooseEgressPort, warnIfUnprotected } from "./egress-port.ts";
import { InboundManager } from "./inbound-manager.ts";
import { sumRechecked, type Rechecked } from "../proxy/in-flight.ts";
import { openPins } from "./mcp-pins.ts";
import { type McpGate, type PinBook, SessionLists } from "../mcp/index.ts";
import { stdioRuleFor } from "../policy/stdio.ts";
import { SpiffeId } from "../spiffe/id.ts";
import { hex, randomConnectionId } from "../proxy/peer-tls.ts";
import { proxyIdentity } from "./proxy-identity.ts";
import { openInterception, type Interception } from "../intercept/interception.ts";
import { AGENT_RECHECK_MS, SecretStore, secretsDir } from "../secrets/index.ts";
import type { InterceptDeps } from "../proxy/intercept/serve.ts";
import { LegPool } from "../proxy/intercept/leg-pool.ts";
import { RuleHits } from "./rule-hits.ts";
import type { Entry } from "./wire.ts";
import { DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_PROXY_SETTINGS } from "../policy/model.ts";

const REASONS: Record<number, string> = { 1: "rule", 2: "no_rule", 3: "unknown_cgroup", 4: "no_proxy", 5: "connection_limit" };
const HOOKS: Record<number, string> = { 1: "connect4", 2: "connect6", 3: "sendmsg4", 4: "sendmsg6" };

export interface EnforcerOptions {
  readonly places: Places;
  readonly core: AgentCore;
  readonly logger: Logger;
  /** The audit log: connections, requests, kernel denials, policy loads. */
  readonly audit: Audit;
  /** False while the audit log cannot be written and audit.on_failure is refuse (default: always true). */
  readonly accepting?: () => boolean;
  /** Fixed egress port (tests); default: kept from the pins, else chosen below 1024. */
  readonly egressPort?: number;
}

/** What a drain did, for the agent_stop event. */
export interface DrainCounts {
  /** Connections open when it began (egress and inbound). */
  readonly in_flight: number;
  /** Of those, ended by themselves before the deadline. */
  readonly finished: number;
  /** Of those, cut at the deadline (`drain_timeout`). */
  readonly cut: number;
  readonly drain_ms: number;
  readonly drain_timeout_ms: number;
}

/** How often a drain looks whether connections are left. */
const DRAIN_POLL_MS = 25;

export interface RunGrant {
  readonly cgroup_dir: string;
  readonly spiffe_id: string | null;
  /** Why the workload has no identity (spiffe_id null): its connections are refused until it has one. */
  readonly no_identity: string | null;
  readonly user: string | null;
  /** The names of the config's workloads (so `tidegate run` can say that `workload` is not one). */
  readonly workloads: readonly string[];
  /** The workload trust bundle (system roots + interception CA) its CA variables name; null without one. */
  readonly ca_bundle: string | null;
}

/** Characters of tool names an admin event's detail lists (a text field holds 65,536; a server may have 1,024 tools of 128). */
const LISTED_TOOLS_CHARS = 4096;

/** `names` joined with ", ", cut after LISTED_TOOLS_CHARS and saying how many were left out; `none` when there are none. */
function listedTools(names: readonly string[], none: string): string {
  if (names.length === 0) return none;
  let text = "";
  let n = 0;
  for (const name of names) {
    if (n > 0 && text.length + 2 + name.length > LISTED_TOOLS_CHARS) break;
    text += n++ > 0 ? `, ${name}` : name;
  }
  return n === names.length ? text : `${text}, and ${names.length - n} more (${names.length} in all)`;
}

export class Enforcer {
  private timers: ReturnType<typeof setInterval>[] = [];
  private watcher: FileWatch | null = null;
  /** Set by `stop`: the maps are closed, and a reload that comes late does nothing. */
  private stopped = false;
  private secretWatch: SecretWatch | null = null;

  constructor(
    readonly capture: Capture,
    readonly holder: PolicyHolder,
    readonly enforcement: Enforcement,
    readonly listener: EgressListener,
    readonly inbound: InboundManager,
    /** The interception CA and the workloads' bundle; null when the CA could not be had (logged). */
    readonly interception: Interception | null,
    /** MCP tool pins (agent/mcp-pins.json), shared by intercepted egress and the inbound listeners. */
    readonly pins: PinBook,
    /** What each rule decided since the policy was loaded; `o.audit` is already its tap. */
    readonly hits: RuleHits,
    private readonly o: EnforcerOptions,
    /** The injected secrets (`changed`: the store looks at its file on the next request). */
    private readonly secrets: Pick<AgentSecrets, "changed"> = { changed() {} },
    /** tg_task_print, which attestation reads callers through (closed at stop). */
    private readonly prints: KernelPrint,
    /** The bundles' generation (proxy-identity.ts): a change has the connections checked again (`sweep`). */
    private readonly trustGeneration: () => number,
  ) {}

  /**
   * `tidegate secret set|rm` changed the store (agent.sock `POST /v1/secrets/changed`): the next
   * request that injects a secret reads it again, and the change is audited now rather than at
   * the next look of the watch.
   */
  secretsChanged(): void {
    this.secrets.changed();
    this.secretWatch?.check();
  }

  /**
   * `tidegate run --mcp-stdio`: the gate between the launching client (`callerPid`, attested)
   * and the workload's server, under the first `stdio[]` rule for both; or why there is none.
   */
  async mcpStdioGate(callerPid: number, callerUid: number, workload: string, callerStartTime?: number): Promise<{ gate: McpGate; rule: string; caller: string; server: string } | { refused: { code: string; message: string } }> {
    const no = (code: string, message: string) => ({ refused: { code, message: `run: ${message}` } });
    const policy = this.holder.policy;
    if (policy === null) return no("run_no_policy", "no policy is loaded, so no stdio rule");
    // audit.on_failure: refuse, as the proxy's listeners: nothing goes unrecorded.
    const auditDown = () => this.o.accepting?.() === false;
    if (auditDown()) return no("run_audit_unavailable", "the audit log cannot be written (audit.on_failure: refuse), so no MCP session starts");
    const server = this.enforcement.identityOf(workload);
    if (server.id === null) return no("run_mcp_no_identity", `workload ${workload} has no identity (${server.why}), so no stdio rule can name it`);
    const caller = await this.enforcement.identifyPid(callerPid, callerUid, callerStartTime);
    if (!caller.ok) return no("run_mcp_caller_unknown", `the calling process (pid ${callerPid}) has no identity: ${caller.detail} (${caller.reason})`);
    const callerId = SpiffeId.parse(caller.id);
    const serverId = server.id;
    const rule = stdioRuleFor(policy, callerId, serverId);
    if (rule === null) return no("run_mcp_no_rule", `no stdio rule lets ${caller.id} use ${serverId.toString()} (tidegate policy explain --from ${caller.id} --stdio ${serverId.toString()} says what each rule lacks)`);
    // Each message under the rule in force then: a reload that narrows the rule applies to the
    // next request, and one that leaves no rule for this pair refuses every request after it, as
    // does a registration change that takes the server's or the caller's identity away.
    const gone = closedRule(rule.name, "rule_removed", `tidegate: no stdio rule lets ${caller.id} use ${serverId.toString()} any more (a policy reload); this server takes no more requests`);
    const revoked = closedRule(rule.name, "identity_revoked", `tidegate: workload ${workload} no longer has identity ${serverId.toString()} (its registration changed); this server takes no more requests`);
    const byPolicy = following(() => this.holder.policy ?? policy, (p) => {
      const r = stdioRuleFor(p, callerId, serverId);
      return r === null ? gone : gateRule(r);
    });
    const callerRevoked = closedRule(rule.name, "identity_revoked", `tidegate: the calling process no longer has identity ${caller.id} (its registration changed); this server takes no more requests`);
    const callerHolds = this.enforcement.holdsIdentity(caller.selectors, caller.id);
    const unrecorded = closedRule(rule.name, "audit_unavailable", "tidegate: the audit log cannot be written (audit.on_failure: refuse); this server takes no more requests");
    const current = () => (auditDown() ? unrecorded : !this.enforcement.stillIdentifies(workload, serverId.toString()) ? revoked : !callerHolds() ? callerRevoked : byPolicy());
    // The stdio relay tells the client when a reload changes what it may list (mcp-stdio.ts).
    const gate = openGate(current, { caller: caller.id, server: serverId.toString(), connId: hex(randomConnectionId()) }, this.o.audit, this.pins, { announcesLists: true });
    return { gate, rule: rule.name, caller: caller.id, server: server.id.toString() };
  }

  /** `tidegate mcp pin --from-file`: `server`'s pins become exactly `hashes` (strict: other tools wait), logged as an admin event. */
  pinTools(server: string, hashes: ReadonlyMap<string, string>, definitions?: ReadonlyMap<string, string>): void {
    this.pins.load(server, hashes, definitions);
    this.o.audit.emit("admin", { action: "mcp pin", actor: null, detail: `${server}: ${listedTools([...hashes.keys()].sort(), "no tools")} (from an approved file)` });
  }

  /** True when a `stdio[]` rule names `workload`'s identity as its server. */
  isStdioServer(workload: string): boolean {
    const id = this.enforcement.identityOf(workload).id;
    return id !== null && (this.holder.policy?.stdio ?? []).some((r) => r.server.some((p) => p.matcher.matches(id)));
  }

  /** `tidegate mcp approve`: pins the waiting definitions of `server` (only `tool`'s when given), logged as an admin event. */
  approveTools(server: string, tool?: string, hash?: string): string[] {
    const approved = this.pins.approve(server, tool, hash);
    this.o.audit.emit("admin", { action: "mcp approve", actor: null, detail: `${server}: ${listedTools(approved, "nothing waiting")}` });
    return approved;
  }

  /**
   * Reloads the config now (SIGHUP). A good load also reaches connections already open whose
   * bytes pass unparsed: each is decided again and ended if it no longer holds (`rechecked`).
   */
  reload(): boolean {
    // A reload asked for before the stop can come after it (single-host mode applies the
    // workloads first, over HTTP): the closed maps must not throw out of it.
    if (this.stopped) return false;
    const ok = this.enforcement.reload();
    if (ok) this.rechecked("policy_loaded", this.listener.recheck());
    this.syncInbound();
    return ok;
  }

  private syncInbound(): void {
    try {
      this.rechecked("policy_loaded", this.inbound.sync(this.holder.policy));
    } catch (e) {
      this.o.logger.error("inbound_sync_failed", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  /**
   * What the connections were last rechecked under (`sweep`): the entries (the list a sync
   * brought, and what of it gives identities: a sync hands over a new list every time, most often
   * equal) and the bundles' generation.
   */
  private checkedEntries: { list: unknown; key: string } | undefined = undefined;
  private checkedTrust: number | undefined = undefined;

  /** Logs what a recheck (after `cause`) ended; each ended connection has its own conn_close. */
  private rechecked(cause: string, done: Promise<Rechecked>): void {
    void done.then((r) => {
      if (r.cut > 0) this.o.logger.info("connections_ended", { cause, ended: r.cut });
      if (r.failed > 0) this.o.logger.error("recheck_failed", { cause, failed: r.failed, error: r.error });
    });
  }

  /** Makes (or reuses) the workload's cgroup with its kernel share written, for `tidegate run`. */
  /** Records that a run of `workload` is root's, so uncontained (--allow-root). */
  noteUncontained(workload: string, callerPid: number | null = null): void {
    this.o.logger.warn("workload_uncontained", { workload, caller_pid: callerPid, reason: "runs as root (--allow-root): it can leave its cgroup and remove the programs" });
  }

  prepareRun(workload: string, opts: { uncontained?: boolean; callerPid?: number } = {}): RunGrant {
    if (opts.uncontained) this.noteUncontained(workload, opts.callerPid ?? null);
    const { dir, id } = this.capture.tree.ensureWorkload(workload);
    this.seen.set(id, workload);
    this.prepared.set(workload, Date.now());
    this.active.set(workload, (this.active.get(workload) ?? 0) + 1);
    this.enforcement.resync();
    const who = this.enforcement.identityOf(workload);
    const configured = this.holder.policy?.workloads.find((w) => w.name === workload);
    return { cgroup_dir: dir, spiffe_id: who.id?.toString() ?? null, no_identity: who.id === null ? who.why : null, user: configured?.user ?? null, workloads: this.holder.policy?.workloads.map((w) => w.name) ?? [], ca_bundle: this.interception?.bundlePath() ?? null };
  }

  /** Runs asked for and not yet released, per workload: a cgroup is never removed under one. */
  private readonly active = new Map<string, number>();

  /** Removes the workload's cgroup if nothing runs in it any more and no other run is starting. */
  release(workload: string): boolean {
    this.noteCgroups();
    const left = Math.max(0, (this.active.get(workload) ?? 1) - 1);
    if (left > 0) {
      this.active.set(workload, left);
      return false;
    }
    this.active.delete(workload);
    if (this.capture.tree.populated(this.capture.tree.workloadDir(workload))) return false;
    const removed = this.capture.tree.removeWorkload(workload);
    if (removed) this.enforcement.resync();
    return removed;
  }

  status(): Record<string, unknown> {
    const counters = Object.fromEntries(Object.entries(this.capture.counters()).map(([k, v]) => [k, Number(v)]));
    return {
      cgroup: this.capture.tree.root,
      pins: this.capture.pinDir,
      adopted: this.capture.adopted,
      egress_port: this.listener.port,
      policy: this.holder.policy === null ? null : { file: this.holder.policy.file, egress_rules: this.holder.policy.egress.length, generation: this.holder.generation },
      policy_rejected: this.enforcement.rejected,
      workloads: [...this.capture.tree.workloads().keys()],
      open_connections: { egress: this.listener.inFlight(), inbound: this.inbound.inFlight() },
      workload_connections: { max: this.capture.maxOpen, open: Object.fromEntries([...this.capture.tree.workloads()].map(([name, id]) => [name, Number(this.capture.openCount(id))])) },
      inbound: this.inbound.status(),
      counters,
      ...this.hits.status(this.holder.policy),
    };
  }

  start(): void {
    this.timers.push(setInterval(() => this.drainEvents(), 100));
    this.timers.push(setInterval(() => this.sweep(), 1000));
    this.timers.push(setInterval(() => this.syncInbound(), 1000));
    const secrets = (this.secretWatch = new SecretWatch(this.o.places.stateDir, this.o.audit));
    this.timers.push(setInterval(() => secrets.check(), 2000));
    this.syncInbound();
    const file = this.o.places.config;
    try {
      // The folder is watched: a save that renames a new file over the old one is heard too.
      this.watcher = watchFile(file, () => void this.reload(), 200);
    } catch {
      this.o.logger.warn("policy_not_watched", { file, reason: "its folder does not exist yet; SIGHUP reloads it" });
    }
  }

  /** When `tidegate run` last asked for each workload: its launcher joins a moment later. */
  private readonly prepared = new Map<string, number>();

  /** Every workload cgroup seen, by id: an event may be read after its cgroup was removed. */
  private readonly seen = new Map<bigint, string>();

  private noteCgroups(): void {
    for (const [name, id] of this.capture.tree.workloads()) this.seen.set(id, name);
  }

  private drainEvents(): void {
    this.capture.drainEvents((e: TgEvent) => {
      if (!this.seen.has(e.cgroupId)) this.noteCgroups();
      const workload = this.seen.get(e.cgroupId) ?? null;
      const rule = e.ruleId === null ? null : (this.holder.policy?.egress[e.ruleId]?.name ?? null);
      const spiffeId = workload === null ? null : (this.enforcement.identityOf(workload).id?.toString() ?? null);
      this.o.audit.emit("deny", {
        side: "egress",
        conn_id: null,
        src: { spiffe_id: spiffeId, pid: e.tgid, uid: e.uid, cgroup_id: e.cgroupId.toString(), workload, exe: null, peer: null, tid: e.pid, gid: e.gid },
        dst: { addr: e.address.text, port: e.port, name: null, proto: e.proto === 17 ? "udp" : "tcp" },
        rule,
        reason: REASONS[e.reason] ?? String(e.reason),
        source: "kernel",
        hook: HOOKS[e.hook] ?? e.hook,
      });
    });
  }

  /**
   * Resyncs, and removes workload cgroups nothing runs in any more (a `tidegate run` client killed
   * before it could say so), leaving alone those asked for in the last 30 s.
   */
  private sweep(): void {
    try {
      for (const name of this.capture.tree.workloads().keys()) {
        if (Date.now() - (this.prepared.get(name) ?? 0) < 30_000) continue;
        if (!this.capture.tree.populated(this.capture.tree.workloadDir(name)) && this.capture.tree.removeWorkload(name)) this.active.delete(name);
      }
      this.enforcement.resync();
    } catch (e) {
      this.o.logger.error("kernel_sync_failed", { error: e instanceof Error ? e.message : String(e) });
    }
    // New entries (a sync with the server brought a change): an identity taken away reaches the
    // egress connections already open. New bundles: a peer whose authority is gone reaches them
    // and the inbound ones.
    const entries = this.enforcement.entries();
    if (entries !== this.checkedEntries?.list) {
      const key = JSON.stringify((entries ?? []).map((e) => [e.id, e.spiffe_id, [...e.selectors].sort()]).sort());
      const was = this.checkedEntries;
      this.checkedEntries = { list: entries, key };
      if (was !== undefined && was.key !== key) this.rechecked("entries_changed", this.listener.recheck());
    }
    const trust = this.trustGeneration();
    if (trust !== this.checkedTrust) {
      const first = this.checkedTrust === undefined;
      this.checkedTrust = trust;
      if (!first) this.rechecked("bundles_changed", Promise.all([this.listener.recheck(), this.inbound.recheckAll()]).then(sumRechecked));
    }
  }

  /**
   * The first half of a graceful stop. The egress port and every inbound port close: a new
   * connection from a managed workload is refused by the kernel (the programs stay attached and
   * still send it to the egress port, where nothing listens: it never goes direct), and one from
   * another host finds no listener. Connections in flight go on (an intercepted one until the
   * answer in progress ends) for at most `agent.drain_timeout` of the policy in force; those still
   * open then are cut, both ways reset, each recorded (`terminated`, `drain_timeout`). Kernel
   * denies are still read meanwhile; inbound listeners are no longer started. `hurry` aborted
   * (a second stop signal) ends the wait at once: what is open is cut then (`stop_forced`).
   */
  async drain(hurry?: AbortSignal): Promise<DrainCounts> {
    const ms = this.holder.policy?.agent.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    const started = performance.now();
    this.listener.stopAccepting();
    this.inbound.stopAccepting();
    const left = () => this.listener.inFlight() + this.inbound.inFlight();
    const inFlight = left();
    this.o.logger.info("agent_draining", { in_flight: inFlight, drain_timeout_ms: ms, effect: "new connections are refused; those in flight may finish" });
    while (left() > 0 && performance.now() - started < ms && hurry?.aborted !== true) await new Promise((r) => setTimeout(r, Math.min(DRAIN_POLL_MS, Math.max(1, ms - (performance.now() - started)))));
    const why =
      hurry?.aborted === true
        ? { outcome: "terminated", reason: "stop_forced", detail: `a second stop signal ended the drain after ${Math.round(performance.now() - started)} ms` }
        : { outcome: "terminated", reason: "drain_timeout", detail: `still open ${ms} ms after the agent began to stop (agent.drain_timeout)` };
    const cut = this.listener.endAll(why) + this.inbound.endAll(why);
    const counts = { in_flight: inFlight, finished: Math.max(0, inFlight - cut), cut, drain_ms: Math.round(performance.now() - started), drain_timeout_ms: ms };
    this.o.logger.info("agent_drained", counts);
    return counts;
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.watcher?.close();
    this.drainEvents();
    this.listener.stop();
    this.inbound.stop();
    this.prints.close();
    this.capture.close();
  }
}

/** The injected secrets, as interception asks for them and as `tidegate secret set|rm` tells of a change. */
interface AgentSecrets {
  /** A secret's value, or null when the store has none or cannot be read. */
  get(name: string): string | null;
  /** The store changed: the next `get` looks at its file. */
  changed(): void;
}

/**
 * The agent's secret store (opened on first use; a store that cannot be read gives no value, so
 * the request is refused, and says why once per error, never with a value).
 */
function agentSecrets(o: EnforcerOptions): AgentSecrets {
  let store: SecretStore | null = null;
  let said: string | null = null;
  return {
    get(name) {
      try {
        store ??= SecretStore.open(secretsDir(o.places.stateDir), { recheckMs: AGENT_RECHECK_MS });
        const v = store.get(name);
        said = null;
        return v;
      } catch (e) {
        store = null;
        const code = (e as { code?: string }).code ?? "secret_store_unreadable";
        if (code !== said) o.logger.error("secret_unavailable", { secret: name, error: code, effect: "requests that inject it are refused (secret_missing)" });
        said = code;
        return null;
      }
    },
    changed: () => store?.invalidate(),
  };
}

/** What interception needs of the agent: leaves of its CA, and secrets from the store. */
function interceptDeps(interception: Interception, pins: PinBook, secrets: AgentSecrets): InterceptDeps {
  return {
    legs: new LegPool(),
    pins,
    sessions: new SessionLists(),
    leafFor: (name) => interception.ca.leafFor(name),
    secret: (name) => secrets.get(name),
  };
}

/** The enforcer, or why this host cannot capture. */
export async function startEnforcer(o: EnforcerOptions): Promise<Enforcer | { unavailable: string }> {
  const host = probeHost();
  if (host.cgroup2 === null) return { unavailable: "no cgroup v2 mount (tidegate attaches its eBPF programs to a cgroup v2 tree)" };
  if (process.getuid?.() !== 0) return { unavailable: "the agent is not root (loading eBPF programs needs root)" };
  let capture: Capture;
  try {
    capture = await Capture.open({ mount: host.cgroup2, cgroupName: o.places.cgroupName, pinDir: o.places.bpfPinDir });
  } catch (e) {
    if (e instanceof CaptureError) throw e;
    if (e instanceof BpfError) return { unavailable: `eBPF: ${e.message}` };
    throw e;
  }
  let pins: PinBook;
  try {
    pins = openPins(o.places.stateDir, o.logger);
  } catch (e) {
    capture.close();
    throw e;
  }
  const holder = new PolicyHolder();
  /** The proxies' bounds in force, read as each connection arrives. */
  const proxyBounds = () => holder.policy?.proxy ?? DEFAULT_PROXY_SETTINGS;
  // Every event the enforcing half writes from here on is counted too (rule-hits.ts), kernel denies included.
  const hits = new RuleHits({ generation: () => holder.generation, policy: () => holder.policy });
  const audit = hits.tap(o.audit);
  const prints = await openKernelPrint(o.logger);
  const attestation = createAttestation({ cgroupName: o.places.cgroupName, ...(prints.print !== undefined ? { kernelPrint: prints.print } : {}) });
  let entryList: { map: ReadonlyMap<string, Entry> | null | undefined; list: Entry[] | null } = { map: undefined, list: null };
  const enforcement = new Enforcement({
    configPath: o.places.config,
    holder,
    capture,
    cgroups: capture.tree,
    // The same list until a sync brings a new map, so what is computed from it can be kept (stillIdentifies).
    entries: () => {
      const map = o.core.entries;
      if (map !== entryList.map) entryList = { map, list: map === null ? null : [...map.values()] };
      return entryList.list;
    },
    attest: async (pid, startTime) => (await attestation.attest(pid, startTime)).selectors,
    logger: o.logger,
    audit,
  });
  // Names are resolved through the dns: setting of the policy in force; a new policy, a new cache.
  let names: { generation: number; cache: NameCache } | null = null;
  const namesNow = (): NameCache => {
    if (names === null || names.generation !== holder.generation) {
      const dns = holder.policy?.dns;
      names = { generation: holder.generation, cache: new NameCache({ hosts: dns?.hosts ?? new Map(), lookup: createDnsLookup(dns?.servers ?? systemResolvers()) }) };
    }
    return names.cache;
  };
  const identity = proxyIdentity(o.core);
  const secrets = agentSecrets(o);
  const interception = await openInterception({ stateDir: o.places.stateDir, runDir: o.places.runDir, label: o.core.identity.config.node, logger: o.logger });
  let listener: EgressListener;
  try {
    const port = o.egressPort ?? (await chooseEgressPort(o.places.instance, capture.proxyPort));
    listener = startEgressListener(port, {
      lookupRecord: (peer, local) => capture.lookupPeer(peer, local),
      identify: (record) => enforcement.identify(record),
      engine: () => holder.engine,
      names: namesNow,
      identity,
      ...(interception !== null ? { intercept: interceptDeps(interception, pins, secrets) } : {}),
      logger: o.logger,
      audit,
      ...(o.accepting !== undefined ? { accepting: o.accepting } : {}),
      timeouts: proxyBounds,
      stillIdentified: (workload, id) => enforcement.stillIdentifies(workload, id),
    });
    capture.setProxyPort(port);
    warnIfUnprotected(port, o.logger);
  } catch (e) {
    prints.close();
    capture.close();
    throw e;
  }
  // A good load resyncs the maps itself; without one, the workloads' shares are written empty.
  const present = existsSync(o.places.config);
  if (!present) o.logger.warn("policy_absent", { file: o.places.config, effect: "no policy: managed workloads reach nothing until one loads" });
  if (!(present && enforcement.reload())) enforcement.resync(true);
  const enforcer = new Enforcer(capture, holder, enforcement, listener, new InboundManager({ identity, logger: o.logger, audit, pins, ...(o.accepting !== undefined ? { accepting: o.accepting } : {}), timeouts: proxyBounds }), interception, pins, hits, { ...o, audit }, secrets, prints, () => identity.trust().generation);
  enforcer.start();
  o.logger.info("capture_ready", { cgroup: capture.tree.root, pins: capture.pinDir, adopted: capture.adopted, egress_port: listener.port });
  return enforcer;
}
