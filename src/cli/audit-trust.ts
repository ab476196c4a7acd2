/**
 * What `audit verify` checks a log against besides the log itself (docs/audit.md, "Commands"):
 * the trust bundle its checkpoint certificates must chain to, and the writer's record of its
 * latest checkpoint (`<state-dir>/agent/audit-checkpoint.json`, the server's
 * `<state-dir>/server/audit-checkpoint.json`), which finds a tail cut off exactly at a checkpoint.
 *
 * The bundle: `--bundle FILE` (PEM roots or SPIFFE JWKS, see ./bundle-file.ts), else the agent's
 * own (`<state-dir>/agent/bundle.json`, for the trust domain of `agent/agent.json`), else none.
 * The state: `--state DIR` (DIR/audit-checkpoint.json, DIR/agent/audit-checkpoint.json, or DIR
 * itself when it is that file), else the writer's own when it exists and the files verified are
 * its audit directory's, else none; `--no-state` turns it off. An input that was asked for, or that exists, and cannot
 * be read or does not parse is a usage error (exit 2), never skipped in silence: skipping the
 * state would hide a cut tail.
 */
import { loadPolicy } from "../policy/load.ts";
import { existsSync, statSync } from "node:fs";
import { readRegularText } from "../runtime/bounded-read.ts";
import { join } from "node:path";
import { BundleSet, TrustDomain, parseJwksBundle } from "../spiffe/index.ts";
import type { X509BundleSource } from "../x509/verify.ts";
import { isTidegateError, quote } from "../errors.ts";
import type { AuditState } from "../audit/format/index.ts";
import { StateFiles } from "../agent/state-files.ts";
import { AUDIT_STATE_FILE } from "../audit/sink/files.ts";
import { loadBundleFile } from "./bundle-file.ts";
import { readInputFile } from "./files.ts";
import { UsageError } from "./usage-error.ts";

/** Whose log: the agent's (the instance's audit directory) or the identity server's (its server/ folder). */
export type LogOwner = "agent" | "server";

/** Where an owner's log and state are, from the instance's places. */
export function logPlace(places: { auditDir: string; stateDir: string; config?: string }, owner: LogOwner): { dir: string; statePath: string } {
  return owner === "agent"
    ? { dir: configuredAuditDir(places.config) ?? places.auditDir, statePath: join(places.stateDir, "agent", AUDIT_STATE_FILE) }
    : { dir: join(places.auditDir, "server"), statePath: join(places.stateDir, "server", AUDIT_STATE_FILE) };
}

/** The config file's `audit.dir`, where the agent writes when it is set; null when unset or unreadable (then the instance's folder). */
function configuredAuditDir(config: string | undefined): string | null {
  if (config === undefined || !existsSync(config)) return null;
  try {
    return loadPolicy(readRegularText(config, "config"), config).audit.dir; // never waits on a FIFO
  } catch {
    return null;
  }
}

export interface Trust {
  readonly bundles: X509BundleSource | null;
  /** Where the bundle came from, e.g. "/var/lib/tidegate/agent/bundle.json (example.org)". */
  readonly bundleFrom: string | null;
  /** The trust domains the bundle holds ([] without one). */
  readonly trustDomains: readonly TrustDomain[];
}

export interface StateRecord extends AuditState {
  readonly path: string;
}

/** A TidegateError from reading an input, as a usage error naming that input. */
function asUsage<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (isTidegateError(e)) throw new UsageError(usageText(what, e.message, e.code));
    throw e;
  }
}

function usageText(what: string, message: string, code: string): string {
  return `${message.startsWith(what) ? message : `${what}: ${message}`} [${code}]`;
}

async function asUsageAsync<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError) throw e;
    if (isTidegateError(e)) throw new UsageError(usageText(what, e.message, e.code));
    throw e;
  }
}

/** A regular file of at most 4 MiB (src/runtime/bounded-read.ts): a FIFO is refused, never waited on. */
function readText(path: string, what: string): string {
  try {
    return readRegularText(path, what);
  } catch (e) {
    const errno = ((e as { cause?: { code?: string } }).cause)?.code;
    if (errno === "EACCES") throw new UsageError(`${what}: cannot read ${quote(path)}: permission denied (the agent's state is root's)`);
    throw new UsageError((e as Error).message);
  }
}

export async function loadTrust(opts: { bundle: string | undefined; trustDomain: string | undefined; stateDir: string }): Promise<Trust> {
  if (opts.bundle !== undefined) {
    const file = opts.bundle;
    const set = await asUsageAsync("--bundle", async () => loadBundleFile(readInputFile(file, "--bundle"), opts.trustDomain));
    const names = set.bundles().map((b) => b.trustDomain.name);
    return { bundles: set, bundleFrom: `${file} (${names.join(", ")})`, trustDomains: set.bundles().map((b) => b.trustDomain) };
  }
  const files = new StateFiles(opts.stateDir);
  const bundlePath = files.path("bundle.json");
  if (!existsSync(bundlePath)) return { bundles: null, bundleFrom: null, trustDomains: [] };
  const what = "the agent's trust bundle";
  const agent = asUsage(what, () => files.readAgentJson());
  if (agent === null) throw new UsageError(`${what}: ${JSON.stringify(files.path("agent.json"))} is missing, so the bundle's trust domain is unknown: give --bundle FILE`);
  const text = readText(bundlePath, what);
  const bundle = await asUsageAsync(what, async () => parseJwksBundle(TrustDomain.parse(agent.trust_domain), text));
  return { bundles: BundleSet.of(bundle), bundleFrom: `${bundlePath} (${agent.trust_domain})`, trustDomains: [bundle.trustDomain] };
}

const HEX64 = /^[0-9a-f]{64}$/;

function parseState(path: string): StateRecord {
  const text = readText(path, "the audit state");
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    j = null;
  }
  const o = j as { seq?: unknown; hash?: unknown } | null;
  if (typeof o !== "object" || o === null || typeof o.seq !== "number" || !Number.isSafeInteger(o.seq) || o.seq < 1 || typeof o.hash !== "string" || !HEX64.test(o.hash)) {
    throw new UsageError(`the audit state ${JSON.stringify(path)} is not {"seq": N, "hash": "<64 hex>"}: give --state DIR or --no-state`);
  }
  return { path, seq: o.seq, hash: o.hash };
}

/**
 * The state to verify against. `state`: the --state value (the file, or a directory holding it
 * directly or under agent/); `noState`: --no-state; `statePath`: the owner's own state file, used
 * when it exists and `useDefault` (the files are the owner's audit directory's).
 */
export function loadState(opts: { state: string | undefined; noState: boolean; statePath: string; useDefault: boolean }): StateRecord | null {
  if (opts.noState) {
    if (opts.state !== undefined) throw new UsageError("give --state DIR or --no-state, not both");
    return null;
  }
  if (opts.state !== undefined) {
    const given = opts.state;
    let isDir = false;
    try {
      isDir = statSync(given).isDirectory();
    } catch {
      // reported below
    }
    const candidates = isDir ? [join(given, AUDIT_STATE_FILE), join(given, "agent", AUDIT_STATE_FILE)] : [given];
    const path = candidates.find((c) => existsSync(c));
    if (path === undefined) throw new UsageError(`--state: ${candidates.map((c) => JSON.stringify(c)).join(" and ")} ${candidates.length === 1 ? "does" : "do"} not exist`);
    return parseState(path);
  }
  if (!opts.useDefault || !existsSync(opts.statePath)) return null;
  return parseState(opts.statePath);
}
