/**
 * What a cgroup v2 path says about containers and Kubernetes pods, as the runtimes write them:
 *
 * | runtime | systemd driver | cgroupfs driver |
 * |---|---|---|
 * | docker | `/system.slice/docker-<id>.scope` | `/docker/<id>` |
 * | containerd (CRI) | `…/kubepods-…-pod<uid_>.slice/cri-containerd-<id>.scope` | `/kubepods/<qos>/pod<uid>/<id>` |
 * | cri-o | `…/crio-<id>.scope` (monitor: `crio-conmon-<id>.scope`) | `…/pod<uid>/crio-<id>` |
 * | podman | `/machine.slice/libpod-<id>.scope[/container]` (monitor: `libpod-conmon-<id>.scope`) | `/libpod_parent/libpod-<id>` |
 *
 * `<id>` is 64 lowercase hex. The innermost container segment names the container (nested
 * runtimes put theirs inside). A conmon scope is the runtime's monitor process, not the container:
 * it yields no container id. The pod UID comes from a `pod<uid>` segment below a kubepods one
 * (also under a prefixed cgroup root, as kind's `kubelet-kubepods-…` slices);
 * the systemd driver writes its dashes as underscores, given back as dashes; static pods' UIDs are
 * 32 hex without dashes. Pure functions: the attestor (cgroup.ts) checks ownership of the dirs.
 */
import { quote } from "../errors.ts";
import { AttestError } from "./errors.ts";

export interface CgroupFinding {
  /** The container id or pod UID. */
  readonly value: string;
  /** The cgroup path up to and including the segment that named it. */
  readonly dir: string;
}

export interface CgroupInfo {
  readonly container: CgroupFinding | null;
  readonly pod: CgroupFinding | null;
}

const HEX64 = "[0-9a-f]{64}";
const CONTAINER: readonly RegExp[] = [
  new RegExp(`^(?:docker|cri-containerd|crio|libpod)-(${HEX64})\\.scope$`),
  new RegExp(`^(?:crio|libpod)-(${HEX64})$`),
  new RegExp(`^(${HEX64})$`),
];
const CONMON = new RegExp(`^(?:crio|libpod)-conmon-${HEX64}(?:\\.scope)?$`);
const UID_DASH = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const UID_UNDERSCORE = "[0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12}";
const STATIC = "[0-9a-f]{32}";
const POD_SYSTEMD = new RegExp(`^(?:[a-z0-9]+-)*kubepods(?:-(?:burstable|besteffort))?-pod(${UID_UNDERSCORE}|${STATIC})\\.slice$`);
const POD_CGROUPFS = new RegExp(`^pod(${UID_DASH}|${STATIC})$`);
const KUBEPODS = /(?:^|-)kubepods(?:[.-]|$)/;

function conflict(kind: string, a: string, b: string, path: string): never {
  throw new AttestError("attest_cgroup_conflict", `attest: cgroup path ${quote(path)} names two ${kind}s, ${a} and ${b}`);
}

export function parseCgroupPath(path: string): CgroupInfo {
  const segs = path.split("/");
  let container: CgroupFinding | null = null;
  let pod: CgroupFinding | null = null;
  let kubepods = false;
  let conmon = false;
  for (let i = 1; i < segs.length; i++) {
    const seg = segs[i]!;
    const dir = segs.slice(0, i + 1).join("/");
    if (CONMON.test(seg)) {
      conmon = true;
      continue;
    }
    const podMatch = kubepods ? (POD_SYSTEMD.exec(seg) ?? POD_CGROUPFS.exec(seg)) : null;
    if (podMatch) {
      const uid = podMatch[1]!.replaceAll("_", "-");
      if (pod !== null && pod.value !== uid) conflict("pod", pod.value, uid, path);
      pod = { value: uid, dir };
      continue;
    }
    if (KUBEPODS.test(seg)) kubepods = true;
    for (const re of CONTAINER) {
      const m = re.exec(seg);
      if (m) container = { value: m[1]!, dir };
    }
  }
  return { container: conmon ? null : container, pod };
}
