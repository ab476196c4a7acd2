/**
 * The interception CA and the workloads' trust bundle as the agent holds them (enforcer.ts).
 *
 * `openInterception` opens (or makes) the CA, writes the bundle and logs which happened:
 * `intercept_ca_loaded`, `intercept_ca_created`, or `intercept_ca_replaced` (warn, with why; also
 * when the running CA is renewed, and the bundle is then rewritten at once). When the CA cannot be
 * had it logs `intercept_unavailable` and returns null: the agent runs on, intercepting nothing
 * (the proxy must refuse `intercept` connections) and `tidegate run` sets no CA variables. `bundlePath()` refreshes the bundle (trust-bundle.ts), picking up a renewed CA or new
 * system roots; when that fails it logs `intercept_bundle_failed` and returns the last path
 * written, or null when none was.
 */
import type { Logger } from "../runtime/log.ts";
import { InterceptionCa } from "./ca.ts";
import { WorkloadTrustBundle, bundlePathIn, SYSTEM_ROOTS } from "./trust-bundle.ts";

export interface Interception {
  readonly ca: InterceptionCa;
  readonly bundle: WorkloadTrustBundle;
  /** The workload bundle's path, refreshed; null when it was never written. */
  bundlePath(): string | null;
}

export interface InterceptionOptions {
  readonly stateDir: string;
  readonly runDir: string;
  /** The node's name or the instance, in the CA's common name. */
  readonly label: string;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Default SYSTEM_ROOTS; null for none. */
  readonly systemRoots?: string | null;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export async function openInterception(o: InterceptionOptions): Promise<Interception | null> {
  const bundle = new WorkloadTrustBundle(bundlePathIn(o.runDir), o.systemRoots === undefined ? SYSTEM_ROOTS : o.systemRoots);
  let written: string | null = null;
  const refresh = (ca: InterceptionCa): string | null => {
    try {
      written = bundle.refresh(ca.certPem);
    } catch (e) {
      o.logger.error("intercept_bundle_failed", { bundle: bundle.path, error: message(e) });
    }
    return written;
  };
  const fields = (ca: InterceptionCa) => ({ ca: ca.certPath, serial: ca.serial, expires_at: ca.notAfter.toISOString() });
  const onRenewed = (ca: InterceptionCa) => {
    o.logger.warn("intercept_ca_replaced", { ...fields(ca), reason: ca.origin.kind === "replaced" ? ca.origin.reason : "renewed" });
    refresh(ca);
  };
  let ca: InterceptionCa;
  try {
    ca = await InterceptionCa.open({ stateDir: o.stateDir, label: o.label, onRenewed, ...(o.now ? { now: o.now } : {}) });
  } catch (e) {
    o.logger.error("intercept_unavailable", { error: message(e), effect: "no interception CA: intercept rules cannot be applied" });
    return null;
  }
  if (ca.origin.kind === "replaced") o.logger.warn("intercept_ca_replaced", { ...fields(ca), reason: ca.origin.reason });
  else o.logger.info(ca.origin.kind === "created" ? "intercept_ca_created" : "intercept_ca_loaded", fields(ca));
  refresh(ca);
  return { ca, bundle, bundlePath: () => refresh(ca) };
}
