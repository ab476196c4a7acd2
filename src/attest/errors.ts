/**
 * Workload attestation errors (docs/attestation.md). Every one fails closed: a process that cannot
 * be attested gets no identity. Codes:
 *
 * - `attest_bad_pid`: not a positive integer pid.
 * - `attest_no_process`: no such process, or it exited during attestation.
 * - `attest_process_changed`: the pid now belongs to another process (its start time differs from
 *   the one captured with the pid), or it exec'd another binary while being attested.
 * - `attest_bad_proc`: a /proc file did not have the shape the kernel writes.
 * - `attest_exe_unreadable`: the executable could not be resolved or read (kernel thread, no rights).
 * - `attest_exe_changed`: the executable's file changed while it was hashed.
 * - `attest_cgroup_untrusted`: a cgroup that would yield a selector is not owned by root.
 * - `attest_cgroup_conflict`: a cgroup path names two different pods.
 * - `attest_bad_workload`: a workload name that cannot be a cgroup directory name.
 * - `attest_no_cgroup2`: the host has no cgroup v2 mount (the cgroup attestors need one).
 * - `attest_failed`: an attestor failed for another reason (named in the message, cause kept).
 * - `attest_bad_selector`: a selector (of an entry, or of the policy's workloads) that no attestor
 *   gives: an unknown type or key, or a value not of its key's form (selector.ts).
 * - `attest_ambiguous`: several entries match with the same, highest number of selectors.
 * - `attest_pod_not_found` (kubelet): the pod or its container is still not listed after the polls.
 * - `attest_kubelet_unavailable` (kubelet): unreachable, untrusted, timed out, or not 200.
 * - `attest_kubelet_config` (kubelet): the token or CA file is missing or invalid, or bad options.
 * - `attest_kubelet_bad_answer` (kubelet): an answer too long, not JSON or not a PodList.
 */
import { TidegateError } from "../errors.ts";

export class AttestError extends TidegateError {}
