/**
 * Errors of `tidegate run`'s launcher (../shared/DESIGN.md section 2, "Privileges"). Every one
 * fails closed: the command is not executed. Codes:
 *
 * - `run_bad_request`: a uid, gid, group list or command the launcher cannot use as given.
 * - `run_bad_cgroup`: the cgroup directory is missing or not on a cgroup v2 mount.
 * - `run_cgroup_join`: writing to cgroup.procs failed, or the process is not in the cgroup after.
 * - `run_root_refused`: the target user is root and `--allow-root` was not given.
 * - `run_privileges`: dropping privileges failed, or /proc shows a privilege left after the drop.
 * - `run_not_found`: the command is not in PATH, or its path does not exist (exit 127).
 * - `run_not_executable`: the command was found but could not be executed (exit 126).
 * - `run_bad_cwd`: the target user cannot enter the working directory (exit 126).
 */
import { TidegateError } from "../errors.ts";

export type RunErrorCode =
  | "run_bad_request"
  | "run_bad_cgroup"
  | "run_cgroup_join"
  | "run_root_refused"
  | "run_privileges"
  | "run_not_found"
  | "run_not_executable"
  | "run_bad_cwd";

export class RunError extends TidegateError<RunErrorCode> {}

/** Exit codes a shell uses: 127 command not found, 126 for every other failure before or at exec. */
export const EXIT_NOT_FOUND = 127;
export const EXIT_CANNOT_RUN = 126;

export function exitCodeFor(e: RunError): number {
  return e.code === "run_not_found" ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}
