/**
 * The attestation the agent and `tidegate attest` use on this host: the unix, cgroup and tidegate
 * attestors over the real /proc, with the cgroup2 mount found by probeHost(), and the kubelet
 * attestor when `kubelet` options are given. A host without a cgroup v2 mount is refused
 * (`attest_no_cgroup2`): tidegate's workload cgroups live there.
 */
import { probeHost } from "../runtime/host.ts";
import { Attestation, type AttestationOptions } from "./attestation.ts";
import type { WorkloadAttestor } from "./attestor.ts";
import { CgroupAttestor } from "./cgroup.ts";
import { AttestError } from "./errors.ts";
import { KubeletAttestor, type KubeletOptions } from "./kubelet.ts";
import { nodeProcFs } from "./node-proc-fs.ts";
import type { ProcFs } from "./proc-fs.ts";
import { TidegateAttestor } from "./tidegate.ts";
import { UnixAttestor } from "./unix.ts";

export interface SystemAttestationOptions extends AttestationOptions {
  /** The agent's cgroup name (Places.cgroupName). */
  readonly cgroupName: string;
  /** Found with probeHost() when not given. */
  readonly cgroup2?: string | null;
  readonly fs?: ProcFs;
  /** When given, k8s:ns, k8s:sa, k8s:pod-label... from the kubelet's pod list (kubelet.ts). */
  readonly kubelet?: KubeletOptions;
}

export function createAttestation(opts: SystemAttestationOptions): Attestation {
  const fs = opts.fs ?? nodeProcFs;
  const mount = opts.cgroup2 === undefined ? probeHost().cgroup2 : opts.cgroup2;
  if (mount === null) throw new AttestError("attest_no_cgroup2", "attest: this host has no cgroup v2 mount (see 'tidegate version')");
  const attestors: WorkloadAttestor[] = [new UnixAttestor(fs), new CgroupAttestor(fs, mount), new TidegateAttestor(fs, mount, opts.cgroupName)];
  if (opts.kubelet !== undefined) attestors.push(new KubeletAttestor(fs, mount, opts.kubelet));
  return new Attestation(fs, attestors, opts);
}
