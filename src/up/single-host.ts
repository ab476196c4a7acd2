/**
 * Single-host mode (`tidegate up`, issue 11; DESIGN.md section 2): the identity server and an agent
 * joined to it, in one process, for one host. On the first start it writes a starter config when
 * the instance has none, creates the trust domain and its CA, applies the config's `workloads:` as
 * registration entries of this node, mints a join token in-process and joins the agent with the
 * server's root fingerprint (trust on first contact without a human in between). Later starts
 * reuse all of it: the agent's state needs no token, and nothing already made is made again.
 *
 * A reload (SIGHUP, or `reload()`) applies the config's workloads again and reloads the policy.
 * Nothing here decides policy: the agent does, exactly as `tidegate agent` would.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { writeAtomic } from "../runtime/atomic-write.ts";
import { watchFile } from "../runtime/file-watch.ts";
import { untrustedFileReason } from "../runtime/trusted-file.ts";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { TidegateError, quote } from "../errors.ts";
import { loadPolicy, type Policy } from "../policy/index.ts";
import { TrustDomain } from "../spiffe/trust-domain.ts";
import type { Places } from "../runtime/instance.ts";
import type { Logger } from "../runtime/log.ts";
import { loadServerConfig } from "../server/config.ts";
import { initIncomplete, initServer, serverPaths } from "../server/init.ts";
import { startServer, type RunningServer } from "../server/server.ts";
import { startAgent, type RunningAgent } from "../agent/index.ts";
import { callServer } from "../cli/server.ts";
import { nodeNameFor, resolversOf, starterConfig, trustDomainFor } from "./starter-config.ts";
import { planEntries, wantedEntries, type ExistingEntry } from "./entries.ts";

export class UpError extends TidegateError {}

export interface SingleHostOptions {
  readonly places: Places;
  readonly logger: Logger;
  /** One line per step, for a person watching (stderr). */
  readonly progress: (line: string) => void;
  /** The trust domain of a starter config this start writes; default from the host name. */
  readonly trustDomain?: string;
  /** How long to wait for the agent to hold every workload's SVID (default 60 s). */
  readonly readyTimeoutMs?: number;
  /** Kernel capture (default true: single-host mode is the enforcing agent). */
  readonly capture?: boolean;
  /** Aborts the start: what was started is stopped and the start rejects (`up_aborted`). */
  readonly signal?: AbortSignal;
}

export interface SingleHost {
  readonly trustDomain: string;
  readonly node: string;
  readonly server: RunningServer;
  readonly agent: RunningAgent;
  /** True when this start wrote the starter config. */
  readonly configWritten: boolean;
  /** Applies the config's workloads again and reloads the policy; false when the config was refused. */
  reload(): Promise<boolean>;
  stop(): Promise<void>;
  /** Ends the agent's drain now (RunningAgent.hurry). */
  hurry(): void;
}

const OURS_FILE = "up-entries.json";

function readConfig(path: string): Policy {
  const untrusted = untrustedFileReason(path, process.geteuid?.() ?? 0);
  if (untrusted !== null) throw new UpError("config_untrusted", `up: ${path} is not trusted: ${untrusted}; only root may be able to change the config`);
  return loadPolicy(readFileSync(path, "utf8"), path);
}

/** writeAtomic (O_EXCL, synced, renamed), making the folder first when it is missing. */
function writeFile(path: string, text: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  writeAtomic(path, text, mode);
}

function readOurs(path: string): Set<string> {
  if (!existsSync(path)) return new Set();
  try {
    const ids = JSON.parse(readFileSync(path, "utf8")).entries;
    return new Set(Array.isArray(ids) ? ids.filter((x: unknown): x is string => typeof x === "string") : []);
  } catch {
    throw new UpError("up_state_damaged", `up: ${quote(path)} is not the list of entries tidegate up made; move it aside to start again`);
  }
}

/** Makes the node's entries hold the config's workloads; returns how many were created and removed. */
async function applyWorkloads(places: Places, policy: Policy, node: string, oursPath: string): Promise<{ created: number; removed: number; kept: number }> {
  const parent = `spiffe://${policy.trustDomain.name}/tidegate/agent/${node}`;
  const existing = ((await callServer(places, "GET", `/v1/entries?parent_id=${encodeURIComponent(parent)}`)) as { entries: ExistingEntry[] }).entries;
  const ours = readOurs(oursPath);
  const plan = planEntries(wantedEntries(policy.workloads, policy.inbound), existing, ours);
  // Removals first: a changed workload keeps its SPIFFE ID, and its old entry must go before the new one.
  // The list is saved after every change, so an entry made just before a crash or a failed call
  // is still known as ours and removed when its workload goes.
  const save = () => writeFile(oursPath, JSON.stringify({ entries: [...ours].sort() }, null, 2) + "\n", 0o600);
  for (const id of plan.remove) {
    await callServer(places, "DELETE", `/v1/entries/${encodeURIComponent(id)}`);
    ours.delete(id);
    save();
  }
  for (const w of plan.create) {
    const made = (await callServer(places, "POST", "/v1/entries", { spiffe_id: w.spiffeId, parent_id: parent, selectors: w.selectors })) as { id: string };
    ours.add(made.id);
    save();
  }
  save();
  return { created: plan.create.length, removed: plan.remove.length, kept: plan.keep.length };
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new UpError("up_aborted", "up: stopped while starting");
}

async function waitHealthy(agent: RunningAgent, wanted: number, timeoutMs: number, progress: (l: string) => void, signal?: AbortSignal): Promise<void> {
  const until = Date.now() + timeoutMs;
  let said = -1;
  for (;;) {
    checkAborted(signal);
    const s = agent.status();
    if (s.healthy && s.svids.length >= wanted) return;
    if (s.svids.length !== said) {
      said = s.svids.length;
      progress(`agent holds ${s.svids.length} of ${wanted} workload SVID${wanted === 1 ? "" : "s"}`);
    }
    if (Date.now() > until) {
      throw new UpError("up_not_ready", `up: the agent was not healthy after ${Math.round(timeoutMs / 1000)} s: ${s.problems.join("; ") || `${s.svids.length} of ${wanted} SVIDs`}`);
    }
    agent.wake();
    await Bun.sleep(100);
  }
}

export async function startSingleHost(o: SingleHostOptions): Promise<SingleHost> {
  const { places, progress } = o;
  let configWritten = false;
  if (!existsSync(places.config)) {
    const td = o.trustDomain ?? trustDomainFor(hostname());
    let resolvConf = "";
    try {
      resolvConf = readFileSync("/etc/resolv.conf", "utf8");
    } catch {
      // No resolv.conf: the starter config says so in a comment.
    }
    try {
      TrustDomain.parse(td);
    } catch (e) {
      throw new UpError("up_bad_trust_domain", `up: --trust-domain ${quote(td)}: ${(e as Error).message}`);
    }
    const text = starterConfig({ trustDomain: td, resolvers: resolversOf(resolvConf), writtenAt: new Date() });
    loadPolicy(text, places.config); // what is written loads, or nothing is written
    writeFile(places.config, text, 0o644);
    configWritten = true;
    progress(`wrote a starter config (default deny) to ${places.config}`);
  }
  const policy = readConfig(places.config);
  const td = policy.trustDomain.name;
  if (o.trustDomain !== undefined && !configWritten && o.trustDomain !== td) {
    throw new UpError("up_trust_domain_mismatch", `up: --trust-domain ${quote(o.trustDomain)} differs from trust_domain ${quote(td)} in ${places.config}; a starter config is only written when none exists`);
  }
  const settings = loadServerConfig(places);
  const paths = serverPaths(places);
  if (!existsSync(paths.datastore) || initIncomplete(places)) {
    // A start killed while it made the CA left its marker (server/init.ts): it is made again.
    progress(`creating trust domain ${td}: a root CA and a signing CA in ${paths.dir}`);
    await initServer({ places, settings, trustDomain: td });
  }
  checkAborted(o.signal);
  progress("starting the identity server");
  const server = await startServer({ places, settings, logger: o.logger });
  const undo: (() => Promise<void>)[] = [() => server.stop()];
  const unwind = async () => {
    for (const fn of undo.reverse()) await fn().catch(() => undefined);
  };
  try {
    if (server.trustDomain !== td) {
      throw new UpError("up_trust_domain_mismatch", `up: the server's state in ${paths.dir} is trust domain ${quote(server.trustDomain)} but ${places.config} says ${quote(td)}; trust domains are never changed in place`);
    }
    checkAborted(o.signal);
    const agentJson = join(places.stateDir, "agent", "agent.json");
    const joined = existsSync(agentJson);
    const node = joined ? String(JSON.parse(readFileSync(agentJson, "utf8")).node ?? nodeNameFor(hostname())) : nodeNameFor(hostname());
    const oursPath = join(paths.dir, OURS_FILE);
    const applied = await applyWorkloads(places, policy, node, oursPath);
    progress(`workloads applied as entries of node ${node}: ${applied.created} created, ${applied.removed} removed, ${applied.kept} unchanged`);
    let join_: { joinToken?: string; fingerprint?: string } = {};
    if (!joined) {
      const t = (await callServer(places, "POST", "/v1/tokens", { node })) as { token: string; server_fingerprint: string };
      join_ = { joinToken: t.token, fingerprint: t.server_fingerprint };
      progress(`joining the agent as node ${node} (root fingerprint ${t.server_fingerprint.slice(0, 16)}...)`);
    } else progress(`starting the agent (node ${node}, joined before)`);
    const agent = await startAgent({
      places,
      serverUrl: server.publicUrl,
      logger: o.logger,
      capture: o.capture ?? true,
      audit: policy.audit,
      ...(policy.agent.syncIntervalMs != null ? { syncIntervalMs: policy.agent.syncIntervalMs } : {}),
      ...(policy.agent.retryMaxMs != null ? { retryMaxMs: policy.agent.retryMaxMs } : {}),
      ...join_,
    });
    undo.push(() => agent.stop());
    await agent.ready;
    if (agent.captureUnavailable !== null && (o.capture ?? true)) {
      throw new UpError("up_no_capture", `up: the agent cannot capture here: ${agent.captureUnavailable}`);
    }
    checkAborted(o.signal);
    await waitHealthy(agent, policy.workloads.length, o.readyTimeoutMs ?? 60_000, progress, o.signal);
    /** The config's workloads again; the agent reloads its policy itself (file watch or SIGHUP). */
    let stopping = false;
    const reapplyOnce = async (): Promise<boolean> => {
      if (stopping) return false;
      let next: Policy;
      try {
        next = readConfig(places.config);
      } catch (e) {
        o.logger.error("up_reload_refused", { file: places.config, error: (e as Error).message, effect: "the workloads in force stay" });
        return false;
      }
      if (next.trustDomain.name !== td) {
        o.logger.error("up_reload_refused", { file: places.config, error: `trust_domain changed to ${next.trustDomain.name}`, effect: "the workloads in force stay" });
        return false;
      }
      try {
        const r = await applyWorkloads(places, next, node, oursPath);
        o.logger.info("up_workloads_applied", { node, ...r });
        // The agent learns of new and removed entries now, not at its next sync: a workload added
        // to the config can be run as soon as its SVID is issued, a few milliseconds on.
        if (r.created + r.removed > 0) agent.wake({ sync: true });
      } catch (e) {
        o.logger.error("up_workloads_failed", { error: (e as Error).message });
        return false;
      }
      return true;
    };
    // One at a time: a save and a SIGHUP at once must not interleave their calls and lists.
    let queue: Promise<unknown> = Promise.resolve();
    const reapply = (): Promise<boolean> => {
      const next = queue.then(reapplyOnce, reapplyOnce);
      queue = next;
      return next;
    };
    // Workloads follow the file as the policy does: an edit is applied shortly after it is saved.
    const watcher = watchFile(places.config, () => void reapply(), 250);
    undo.push(async () => watcher.close());
    return {
      trustDomain: td,
      node,
      server,
      agent,
      configWritten,
      // A reload still applying the workloads when the stop comes ends there, without the agent's.
      reload: async () => (await reapply()) && !stopping && agent.reload(),
      stop: () => {
        stopping = true;
        return unwind();
      },
      hurry: () => agent.hurry(),
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}
