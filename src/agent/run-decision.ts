/**
 * Who may run what through run.sock (DESIGN.md section 2, "Privileges"; docs/capture.md). The
 * caller is who the kernel says connected (SO_PEERCRED), never what the request claims.
 *
 * Combining rule, fail closed (the first refusal wins):
 * - uid 0 may run any workload as any user: USER is the request's, else the workload's `user:`;
 *   a root target needs `allow_root` (the same rules as `tidegate run` by root on agent.sock).
 * - any other caller must be in the agent's run group (`agent.run_group`, default `tidegate`): its
 *   gid from SO_PEERCRED, or a group /etc/group gives its user; AND the workload must be in the
 *   config with a `run_by` that names the caller (`users`: a name or uid of the caller; `groups`:
 *   a group the caller is in); AND the workload must have a `user:`, the only user it runs as (the
 *   request may name it again, by name or uid, and nothing else); AND that user is not root
 *   (`allow_root` is refused outright); AND the target user can enter the working directory
 *   (every component searchable by its uid, gid or groups: a caller cannot hand the workload a
 *   directory it could not reach itself).
 * Accounts come from /etc/passwd and /etc/group only (../run/accounts.ts).
 */
import { realpathSync, statSync } from "node:fs";
import { quote } from "../errors.ts";
import type { Policy } from "../policy/model.ts";
import { findGroup, findListedGroup, findUser, supplementaryGroups, type AccountFiles } from "../run/accounts.ts";
import type { PeerCredentials } from "../runtime/unix-fds.ts";
import { noUserReason, type RunRequest } from "./run-protocol.ts";

export type RunRefusalCode =
  | "run_not_in_group"
  | "run_no_policy"
  | "run_workload_unknown"
  | "run_not_in_run_by"
  | "run_workload_without_user"
  | "run_user_not_allowed"
  | "run_no_such_user"
  | "run_root_refused"
  | "run_cwd_unreachable";

export interface RunTarget {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** The user as named (for logs). */
  readonly user: string;
  readonly allowRoot: boolean;
  readonly cwd: string;
}

export type RunDecision =
  | { readonly ok: true; readonly target: RunTarget }
  | { readonly ok: false; readonly code: RunRefusalCode; readonly message: string };

export interface DecisionInput {
  readonly caller: PeerCredentials;
  readonly request: RunRequest;
  /** The policy in force; null before the first good load. */
  readonly policy: Pick<Policy, "workloads" | "agent"> | null;
  readonly files: AccountFiles;
  /** Whether the target can enter `cwd`, and its real path (default: `reachable` on this host). */
  readonly cwdFor?: (cwd: string, who: { uid: number; gid: number; groups: readonly number[] }) => string | null;
}

function no(code: RunRefusalCode, message: string): RunDecision {
  return { ok: false, code, message: `run: ${message}` };
}

/** The groups a caller is in: its gid from the kernel, then what /etc/group gives its user. */
export function callerGroups(files: AccountFiles, caller: PeerCredentials): number[] {
  return [...new Set([caller.gid, ...supplementaryGroups(files, caller.uid, caller.gid)])];
}

export function decideRun(input: DecisionInput): RunDecision {
  const { caller, request, policy, files } = input;
  const configured = policy?.workloads.find((w) => w.name === request.workload) ?? null;
  const cwdFor = input.cwdFor ?? reachable;
  if (caller.uid === 0) {
    const spec = request.user ?? configured?.user ?? null;
    if (spec === null) return no(policy !== null && configured === null ? "run_workload_unknown" : "run_workload_without_user", noUserReason(request.workload, policy?.workloads.map((w) => w.name) ?? null));
    const account = findUser(files, spec);
    if (account === null) return no("run_no_such_user", `no such user ${quote(spec)}`);
    if (account.uid === 0 && !request.allowRoot) {
      return no("run_root_refused", "refusing to run the command as root (uid 0): a root workload can leave its cgroup and remove tidegate's programs; pass --allow-root to run it uncontained");
    }
    const gid = account.gid ?? account.uid;
    return { ok: true, target: { uid: account.uid, gid, groups: supplementaryGroups(files, account.uid, gid), user: spec, allowRoot: request.allowRoot, cwd: request.cwd } };
  }
  const who = `uid ${caller.uid}`;
  if (policy === null) return no("run_no_policy", `the agent has no policy loaded yet, so no workload names ${who} in run_by`);
  const groupName = policy.agent.runGroup;
  const runGid = findListedGroup(files, groupName);
  const groups = callerGroups(files, caller);
  if (runGid === null || !groups.includes(runGid)) {
    return no("run_not_in_group", `${who} is not a member of the agent's run group ${quote(groupName)}${runGid === null ? " (no such group in /etc/group)" : ""}; only root and its members may run workloads`);
  }
  if (configured === null) return no("run_workload_unknown", `workload ${quote(request.workload)} is not in the agent's config, so its run_by names nobody`);
  const byUser = configured.runBy.users.some((u) => findUser(files, u)?.uid === caller.uid);
  const byGroup = configured.runBy.groups.some((g) => {
    const gid = findGroup(files, g);
    return gid !== null && groups.includes(gid);
  });
  if (!byUser && !byGroup) return no("run_not_in_run_by", `workload ${quote(request.workload)}'s run_by does not name ${who} (users or one of its groups)`);
  if (configured.user === null) return no("run_workload_without_user", `workload ${quote(request.workload)} has no user: in the config; only root may run it`);
  const account = findUser(files, configured.user);
  if (account === null) return no("run_no_such_user", `workload ${quote(request.workload)}'s user ${quote(configured.user)} does not exist`);
  if (request.user !== null && request.user !== configured.user && findUser(files, request.user)?.uid !== account.uid) {
    return no("run_user_not_allowed", `workload ${quote(request.workload)} runs as ${quote(configured.user)} only; --user ${quote(request.user)} is for root`);
  }
  if (request.allowRoot) return no("run_root_refused", "--allow-root is for root only");
  if (account.uid === 0) return no("run_root_refused", `workload ${quote(request.workload)}'s user is root: only root may run it (with --allow-root)`);
  const gid = account.gid ?? account.uid;
  const target = { uid: account.uid, gid, groups: supplementaryGroups(files, account.uid, gid) };
  const cwd = cwdFor(request.cwd, target);
  if (cwd === null) return no("run_cwd_unreachable", `user ${quote(configured.user)} cannot enter the working directory ${quote(request.cwd)}; cd to one it can reach`);
  return { ok: true, target: { ...target, user: configured.user, allowRoot: false, cwd } };
}

/** Mode bits of one path (stat(2)); injectable for tests. */
export type StatFn = (path: string) => { mode: number; uid: number; gid: number };

/**
 * The real path of `dir` when it is a directory that `who` may search, with every directory on
 * the way (execute permission by owner, group or other bits; ACLs are not consulted, so they can
 * only make this refuse): else null.
 */
export function reachable(dir: string, who: { uid: number; gid: number; groups: readonly number[] }, stat: StatFn = statSync, real: (p: string) => string = realpathSync): string | null {
  let path: string;
  try {
    path = real(dir);
  } catch {
    return null;
  }
  const parts = path.split("/").filter((p) => p !== "");
  for (let i = 0; i <= parts.length; i++) {
    const prefix = `/${parts.slice(0, i).join("/")}`;
    let s: { mode: number; uid: number; gid: number };
    try {
      s = stat(prefix);
    } catch {
      return null;
    }
    if ((s.mode & 0o170000) !== 0o040000) return null;
    const bit = s.uid === who.uid ? 0o100 : s.gid === who.gid || who.groups.includes(s.gid) ? 0o010 : 0o001;
    if ((s.mode & bit) === 0) return null;
  }
  return path;
}
