/**
 * The policy in force, replaced only by a complete new one (DESIGN.md section 5: a failed reload
 * keeps the last good policy). `reload` either swaps in the new policy and its engine together or
 * leaves both untouched and says why; a caller never sees a policy without its engine, or half
 * of a file. The agent (kernel capture issue) calls it on SIGHUP and at start.
 */
import { PolicyEngine } from "./engine.ts";
import { PolicyError } from "./errors.ts";
import { loadPolicy } from "./load.ts";
import type { Policy } from "./model.ts";

export type ReloadResult =
  | { readonly ok: true; readonly policy: Policy }
  | { readonly ok: false; readonly error: PolicyError; readonly kept: Policy | null };

export class PolicyHolder {
  private current: { readonly policy: Policy; readonly engine: PolicyEngine } | null = null;
  private loads = 0;

  /** Counts good loads: what was computed from the policy is stale when this has moved. */
  get generation(): number {
    return this.loads;
  }

  /** The policy in force, or null before the first good load (then every connection is denied). */
  get policy(): Policy | null {
    return this.current?.policy ?? null;
  }

  get engine(): PolicyEngine | null {
    return this.current?.engine ?? null;
  }

  /** Loads `text`; on any PolicyError the policy in force stays. Other errors are bugs and propagate. */
  reload(text: string, file: string): ReloadResult {
    let policy: Policy;
    try {
      policy = loadPolicy(text, file);
    } catch (e) {
      if (e instanceof PolicyError) return { ok: false, error: e, kept: this.policy };
      throw e;
    }
    this.current = Object.freeze({ policy, engine: new PolicyEngine(policy) });
    this.loads++;
    return { ok: true, policy };
  }
}
