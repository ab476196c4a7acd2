/**
 * The part of the kubelet's `GET /pods` answer (a core/v1 PodList) that the kubelet attestor reads,
 * and the selectors a pod and one of its containers give, named as SPIRE's k8s workload attestor
 * names them (pkg/agent/plugin/workloadattestor/k8s/k8s.go):
 *
 * - pod: `k8s:ns`, `k8s:sa`, `k8s:node-name`, `k8s:pod-uid`, `k8s:pod-name`,
 *   `k8s:pod-label:KEY:VALUE`, `k8s:pod-owner:KIND:NAME`, `k8s:pod-owner-uid:KIND:UID`,
 *   `k8s:pod-image:IMAGE` and `k8s:pod-init-image:IMAGE` (each container's image and image id),
 *   `k8s:pod-image-count:N`, `k8s:pod-init-image-count:N`;
 * - the process's container: `k8s:container-name:NAME`, `k8s:container-image:IMAGE` (its image as
 *   written in the pod spec, and its image id with the digest).
 *
 * Selectors whose value would be empty (an image id not yet pulled) are left out.
 *
 * Parsing is defensive and lazy: the list is indexed by `metadata.uid` without trusting the rest,
 * and only the pod asked about is validated (valibot); a malformed pod, or a UID listed twice, is
 * refused (`attest_kubelet_bad_answer`), never read around. A container is found by its id among
 * the pod's `containerStatuses` and `initContainerStatuses` (ids as `containerd://<id>`,
 * `cri-o://<id>`, `docker://<id>`); ephemeral containers are not looked at, as in SPIRE.
 */
import * as v from "valibot";
import { quote } from "../errors.ts";
import { AttestError } from "./errors.ts";

const str = v.nullish(v.string());

const ContainerStatus = v.object({
  name: v.string(),
  image: str,
  imageID: str,
  containerID: str,
});

const Pod = v.object({
  metadata: v.object({
    name: v.string(),
    namespace: v.string(),
    uid: v.string(),
    labels: v.nullish(v.record(v.string(), v.string())),
    ownerReferences: v.nullish(v.array(v.object({ kind: v.string(), name: v.string(), uid: v.string() }))),
  }),
  spec: v.nullish(v.object({ serviceAccountName: str, nodeName: str })),
  status: v.nullish(v.object({ containerStatuses: v.nullish(v.array(ContainerStatus)), initContainerStatuses: v.nullish(v.array(ContainerStatus)) })),
});

const PodList = v.object({ kind: v.optional(v.literal("PodList")), items: v.nullish(v.array(v.unknown())) });

export type KubeletPod = v.InferOutput<typeof Pod>;
export type KubeletContainer = v.InferOutput<typeof ContainerStatus>;

const DUPLICATE = Symbol("duplicate uid");

/** The pods of one answer, by UID, not yet validated. */
export interface PodIndex {
  readonly size: number;
  get(uid: string): unknown;
}

function bad(detail: string): never {
  throw new AttestError("attest_kubelet_bad_answer", `attest: the kubelet's pod list ${detail}`);
}

/** Indexes a parsed `/pods` answer by `metadata.uid` (items without a string UID are skipped). */
export function indexPodList(body: unknown): PodIndex {
  const list = v.safeParse(PodList, body);
  if (!list.success) bad(`is not a PodList (${issueAt(list.issues)})`);
  const byUid = new Map<string, unknown>();
  for (const item of list.output.items ?? []) {
    const uid = (item as { metadata?: { uid?: unknown } } | null)?.metadata?.uid;
    if (typeof uid !== "string" || uid === "") continue;
    byUid.set(uid, byUid.has(uid) ? DUPLICATE : item);
  }
  return byUid;
}

export type Lookup =
  | { readonly kind: "found"; readonly pod: KubeletPod; readonly container: KubeletContainer }
  | { readonly kind: "no_pod" }
  | { readonly kind: "no_container"; readonly pod: KubeletPod };

/** The pod `podUid` and, in it, the container whose id is `containerId` (64 hex). */
export function findContainer(index: PodIndex, podUid: string, containerId: string): Lookup {
  const raw = index.get(podUid);
  if (raw === undefined) return { kind: "no_pod" };
  if (raw === DUPLICATE) bad(`lists pod ${podUid} twice`);
  const parsed = v.safeParse(Pod, raw);
  if (!parsed.success) bad(`has a malformed pod ${podUid} (${issueAt(parsed.issues)})`);
  const pod = parsed.output;
  const statuses = [...(pod.status?.containerStatuses ?? []), ...(pod.status?.initContainerStatuses ?? [])];
  const matches = statuses.filter((s) => runtimeIdOf(s.containerID) === containerId);
  if (matches.length > 1) bad(`has two containers with id ${containerId} in pod ${podUid}`);
  return matches[0] === undefined ? { kind: "no_container", pod } : { kind: "found", pod, container: matches[0] };
}

/** The id in a status's `containerID` (`<runtime>://<id>`), or null when it has none yet. */
export function runtimeIdOf(containerID: string | null | undefined): string | null {
  if (!containerID) return null;
  const at = containerID.indexOf("://");
  if (at <= 0) return null;
  return containerID.slice(at + 3);
}

function images(statuses: readonly KubeletContainer[]): string[] {
  const out = new Set<string>();
  for (const s of statuses) {
    if (s.image) out.add(s.image);
    if (s.imageID) out.add(s.imageID);
  }
  return [...out];
}

/** The selectors of `pod` and of `container` in it, in a stable order (labels sorted by key). */
export function podSelectors(pod: KubeletPod, container: KubeletContainer): string[] {
  const m = pod.metadata;
  const main = pod.status?.containerStatuses ?? [];
  const init = pod.status?.initContainerStatuses ?? [];
  const out: string[] = [];
  const add = (key: string, value: string | null | undefined) => {
    if (value) out.push(`k8s:${key}:${value}`);
  };
  add("ns", m.namespace);
  add("sa", pod.spec?.serviceAccountName);
  add("node-name", pod.spec?.nodeName);
  add("pod-uid", m.uid);
  add("pod-name", m.name);
  add("pod-image-count", String(main.length));
  add("pod-init-image-count", String(init.length));
  for (const i of images(main)) add("pod-image", i);
  for (const i of images(init)) add("pod-init-image", i);
  for (const [k, val] of Object.entries(m.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) add("pod-label", `${k}:${val}`);
  for (const o of m.ownerReferences ?? []) {
    add("pod-owner", `${o.kind}:${o.name}`);
    add("pod-owner-uid", `${o.kind}:${o.uid}`);
  }
  add("container-name", container.name);
  for (const i of images([container])) add("container-image", i);
  return out;
}

function issueAt(issues: readonly v.BaseIssue<unknown>[]): string {
  const first = issues[0];
  if (first === undefined) return "invalid";
  const path = (first.path ?? []).map((p) => String(p.key)).join(".");
  return `${path === "" ? "top level" : quote(path)}: ${first.expected !== null ? `expected ${first.expected}` : first.kind}`;
}
