/**
 * The one interface every workload attestor implements (after SPIRE's WorkloadAttestor plugins):
 * a process, named by its pid and its start time, in; selectors in SPIRE's `type:key:value` syntax
 * out. An attestor never decides identity; matching selectors to entries is match.ts's job.
 *
 * An attestor may throw; the orchestrator (attestation.ts) then checks whether the process is
 * still the one asked about and reports `attest_no_process` / `attest_process_changed` first.
 */
export interface ProcessRef {
  readonly pid: number;
  /** Field 22 of /proc/PID/stat: clock ticks after boot when the process started. */
  readonly startTime: number;
}

export interface WorkloadAttestor {
  /** The selector type it produces ("unix", "cgroup", "tidegate"). */
  readonly name: string;
  attest(proc: ProcessRef): Promise<string[]>;
}
