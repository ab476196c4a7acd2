/**
 * `startAgent`: the identity half of `tidegate agent`. Bootstraps (bootstrap.ts), loads the SVIDs
 * kept from the last run, serves the admin API on `<run-dir>/agent.sock` (root only), with capture
 * `<run-dir>/run.sock` for `tidegate run` by root and the run group (run-service.ts), and runs the loops
 * (agent-core.ts) until `stop()`. A stop drains first (enforcer.ts `drain`: new connections
 * refused, the capture still pinned, connections in flight given `agent.drain_timeout`, the rest
 * cut and recorded), then aborts the identity loop's requests, waits for it, removes the sockets
 * and writes `agent_stop` with the drain's counts.
 */
import { join } from "node:path";
import type { Places } from "../runtime/instance.ts";
import { createLogger, type Logger } from "../runtime/log.ts";
import { serveUnix, type UnixServer } from "../runtime/unix-http.ts";
import { readRegularText } from "../runtime/bounded-read.ts";
import { answersOn } from "../runtime/unix-http.ts";
import { AgentCore } from "./agent-core.ts";
import { bootstrap } from "./bootstrap.ts";
import { AgentError, describeError } from "./errors.ts";
import { adminApp } from "./admin-app.ts";
import { statusOf, type AgentStatus } from "./health.ts";
import { StateFiles } from "./state-files.ts";
import { parseFingerprint } from "./trust.ts";
import { parseServerUrl } from "./server-client.ts";
import { loadSvids } from "./workload-svid.ts";
import { startEnforcer, type Enforcer } from "./enforcer.ts";
import { RunService, runHostOf } from "./run-service.ts";
import { AuditLog, NullAuditLog, type AgentAuditLog } from "../audit/sink/audit-log.ts";

declare const TIDEGATE_BENCH_NULL_AUDIT: boolean | undefined;
/** True only in dist/tidegate-bench-null-audit (scripts/build.ts --bench-null-audit): bench/audit.ts's baseline. */
const BENCH_NULL_AUDIT = typeof TIDEGATE_BENCH_NULL_AUDIT === "boolean" && TIDEGATE_BENCH_NULL_AUDIT;
import { followingSigner } from "../audit/sink/signer.ts";
import { CursorFile, FileSource, OtlpExporter } from "../audit/export/index.ts";
import { AUDIT_EXPORT_CURSOR_FILE, AUDIT_STATE_FILE } from "../audit/sink/files.ts";
import { DEFAULT_AUDIT_SETTINGS, type AuditSettings } from "../policy/model.ts";
import { VERSION } from "../version.ts";

export const DEFAULT_SYNC_INTERVAL_MS = 5_000;
export const DEFAULT_RETRY_MAX_MS = 60_000;
/** Shortest pause between two ticks, so that no bug can make the loop spin. */
const MIN_PAUSE_MS = 10;
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface StartAgentOptions {
  readonly places: Places;
  readonly serverUrl?: string;
  readonly joinToken?: string;
  /** As typed: hex SHA-256, colons and case ignored. */
  readonly fingerprint?: string;
  /** Path of a bundle file (PEM roots or SPIFFE JWKS). */
  readonly trustBundle?: string;
  readonly syncIntervalMs?: number;
  readonly retryMaxMs?: number;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly logger?: Logger;
  /** Kernel capture, the policy and the egress listener (enforcer.ts). Off by default in-process. */
  readonly capture?: boolean;
  readonly egressPort?: number;
  /** The config's audit: settings; absent: the defaults (docs/audit.md). */
  readonly audit?: AuditSettings;
}

export interface RunningAgent {
  readonly socketPath: string;
  readonly core: AgentCore;
  /** Resolves once the first round (sync and SVID requests) has run. */
  readonly ready: Promise<void>;
  status(): AgentStatus;
  /** Runs the loop now instead of at the next due time; with `sync`, that round syncs the entries too. */
  wake(o?: { readonly sync?: boolean }): void;
  /** The enforcer when capture runs; else why it does not (null when not asked for). */
  readonly enforcer: Enforcer | null;
  readonly captureUnavailable: string | null;
  /** Reloads the config (SIGHUP); false when it was rejected or there is no capture. */
  reload(): boolean;
  /** Drains, then stops; a second call waits for the first. */
  stop(): Promise<void>;
  /** Ends a stop's drain now (a second SIGTERM or SIGINT): what is in flight is cut and recorded, and the stop goes on as usual. */
  hurry(): void;
}

/**
 * The continuous export of the audit log (`audit.export.otlp`): woken by each event written, in
 * order, from a cursor in the state folder, so a restart resumes where delivery stopped. Its
 * states go to the operational log; a refusal stops it (and says so) until the next start.
 */
function startExport(url: string, auditDir: string, stateDir: string, instance: string, logger: Logger): OtlpExporter {
  let said: string | null = null;
  const exporter = new OtlpExporter({
    url,
    instance,
    source: new FileSource(auditDir),
    cursor: new CursorFile(join(stateDir, AUDIT_EXPORT_CURSOR_FILE)),
    onStatus(s) {
      if (s.state === said && s.state !== "failed") return;
      said = s.state;
      if (s.state === "failed") logger.error("audit_export_failed", { seq: s.seq, status: s.status ?? null, error: s.error ?? null, effect: "export stopped until the agent restarts; events stay in the audit files" });
      else if (s.state === "retrying") logger.warn("audit_export_retrying", { seq: s.seq, status: s.status ?? null, error: s.error ?? null, wait_ms: s.waitMs ?? null });
      else if (s.state === "delivering") logger.info("audit_export_delivering", { seq: s.seq });
    },
  });
  exporter.start();
  return exporter;
}

export async function startAgent(o: StartAgentOptions): Promise<RunningAgent> {
  const now = o.now ?? Date.now;
  const logger = o.logger ?? createLogger();
  const files = new StateFiles(o.places.stateDir);
  const stopping = new AbortController();
  const signal = stopping.signal;
  // One agent per instance: a second would take over the first's sockets, cgroups and maps.
  const running = join(o.places.runDir, "agent.sock");
  if (await answersOn(running)) {
    throw new AgentError("agent_running", `agent: another agent of this instance answers on ${JSON.stringify(running)}; stop it first`);
  }
  // The origin only: a URL's user name or password (refused by parseServerUrl) never reaches the log.
  const serverOrigin = o.serverUrl !== undefined ? parseServerUrl(o.serverUrl).origin : null;
  logger.info("agent_start", { instance: o.places.instance, state_dir: files.dir, server: serverOrigin, join_token_given: o.joinToken !== undefined });
  const fingerprint = o.fingerprint !== undefined ? parseFingerprint(o.fingerprint) : undefined;
  let trustBundle: { text: string; path: string } | undefined;
  if (o.trustBundle !== undefined) {
    try {
      // A regular file of at most 4 MiB: a FIFO or /dev/zero is refused, never waited on or read.
      trustBundle = { text: readRegularText(o.trustBundle, "agent: --trust-bundle"), path: o.trustBundle };
    } catch (e) {
      throw new AgentError("trust_bundle_bad", (e as Error).message, { cause: e });
    }
  }
  const identity = await bootstrap({
    files,
    now,
    logger,
    signal,
    ...(o.serverUrl !== undefined ? { serverUrl: o.serverUrl } : {}),
    ...(o.joinToken !== undefined ? { joinToken: o.joinToken } : {}),
    ...(fingerprint !== undefined ? { fingerprint } : {}),
    ...(trustBundle !== undefined ? { trustBundle } : {}),
    ...(o.random ? { random: o.random } : {}),
  });
  const cached = await loadSvids(files, o.random);
  for (const id of cached.dropped) logger.warn("svid_cache_dropped", { entry_id: id, reason: "unreadable or key mismatch" });
  const core = new AgentCore({
    files,
    identity,
    svids: cached.svids,
    syncIntervalMs: o.syncIntervalMs ?? DEFAULT_SYNC_INTERVAL_MS,
    retryMaxMs: o.retryMaxMs ?? DEFAULT_RETRY_MAX_MS,
    now,
    logger,
    signal,
    ...(o.random ? { random: o.random } : {}),
  });
  await core.init();
  const settings = o.audit ?? DEFAULT_AUDIT_SETTINGS;
  const auditDir = settings.dir ?? o.places.auditDir;
  let auditError: string | null = null;
  let exporter: OtlpExporter | null = null;
  const audit: AgentAuditLog = BENCH_NULL_AUDIT ? new NullAuditLog() : AuditLog.open({
    dir: auditDir,
    statePath: join(files.dir, AUDIT_STATE_FILE),
    signer: followingSigner(() => core.identity.node),
    ...(settings.checkpointEvery !== null ? { checkpointEvery: settings.checkpointEvery } : {}),
    ...(settings.checkpointIntervalMs !== null ? { checkpointIntervalMs: settings.checkpointIntervalMs } : {}),
    ...(settings.maxFileBytes !== null ? { maxFileBytes: settings.maxFileBytes } : {}),
    onWritten: () => exporter?.notify(),
    onHealth(healthy, error) {
      auditError = error;
      if (healthy) logger.info("audit_recovered", { dir: auditDir });
      else logger.error("audit_unwritable", { dir: auditDir, error, effect: settings.onFailure === "refuse" ? "new connections are refused until it can be written (audit.on_failure: refuse)" : "connections are served; events wait in memory (audit.on_failure: serve)" });
    },
  });
  // Which agent wrote the log is said once here (and by every checkpoint's signer), not on every line.
  audit.emit("agent_start", { version: VERSION, pid: process.pid, instance: o.places.instance ?? "default", node_id: identity.config.spiffe_id });
  if (settings.exportOtlp !== null) exporter = startExport(settings.exportOtlp, auditDir, files.dir, o.places.instance ?? "default", logger);
  const auditStatus = () => ({ dir: auditDir, healthy: audit.healthy, error: auditError, seq: audit.seq, on_failure: settings.onFailure });
  let enforcer: Enforcer | null = null;
  let captureUnavailable: string | null = null;
  if (o.capture) {
    const started = await startEnforcer({ places: o.places, core, logger, audit, accepting: () => settings.onFailure === "serve" || audit.healthy, ...(o.egressPort !== undefined ? { egressPort: o.egressPort } : {}) });
    if ("unavailable" in started) {
      captureUnavailable = started.unavailable;
      logger.warn("capture_unavailable", { reason: started.unavailable, effect: "identity only: tidegate run is refused" });
    } else enforcer = started;
  }
  const socketPath = join(o.places.runDir, "agent.sock");
  const server: UnixServer = serveUnix(socketPath, adminApp(core, now, { enforcer, captureUnavailable: captureUnavailable ?? (o.capture ? null : "the agent runs without capture (--no-capture)") }, auditStatus).fetch);
  let runService: RunService | null = null;
  if (enforcer !== null) {
    const runSocket = join(o.places.runDir, "run.sock");
    try {
      runService = new RunService({ socketPath: runSocket, host: runHostOf(enforcer), logger });
    } catch (e) {
      logger.error("run_socket_failed", { socket: runSocket, error: describeError(e), effect: "only root can run workloads (over agent.sock)" });
    }
  }
  logger.info("agent_ready", { node: identity.config.node, spiffe_id: identity.config.spiffe_id, socket: socketPath, svids_cached: cached.svids.size });

  let wakeUp: (() => void) | null = null;
  let firstDone: () => void = () => {};
  const ready = new Promise<void>((r) => (firstDone = r));
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, Math.min(Math.max(ms, MIN_PAUSE_MS), MAX_TIMER_MS));
      function done() {
        clearTimeout(t);
        signal.removeEventListener("abort", done);
        wakeUp = null;
        resolve();
      }
      wakeUp = done;
      signal.addEventListener("abort", done);
    });
  const loop = (async () => {
    while (!signal.aborted) {
      let next = now() + 1000;
      try {
        next = await core.tick();
      } catch (e) {
        logger.error("agent_loop_failed", { error: describeError(e) });
      }
      firstDone();
      if (signal.aborted) break;
      await pause(next - now());
    }
  })();

  let stopped: Promise<void> | null = null;
  const hurried = new AbortController();
  return {
    socketPath,
    core,
    ready,
    status: () => statusOf(core, now(), auditStatus()),
    wake: (w) => {
      if (w?.sync === true) core.syncSoon();
      wakeUp?.();
    },
    enforcer,
    captureUnavailable,
    reload: () => enforcer?.reload() ?? false,
    stop: () =>
      (stopped ??= (async () => {
        runService?.stop();
        const drained = enforcer === null ? null : await enforcer.drain(hurried.signal);
        stopping.abort();
        await loop;
        enforcer?.stop();
        await server.stop();
        audit.emit("agent_stop", { reason: "stopped", ...drained });
        audit.close();
        await exporter?.stop(); // what it could not deliver goes at the next start (the cursor)
        logger.info("agent_stopped", { node: identity.config.node });
      })()),
    hurry: () => hurried.abort(),
  };
}
