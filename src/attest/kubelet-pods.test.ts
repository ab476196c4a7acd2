import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { AttestError } from "./errors.ts";
import { findContainer, indexPodList, podSelectors, runtimeIdOf } from "./kubelet-pods.ts";
import { DNS_APP, DNS_UID, LATE_APP, LATE_UID, STATIC_APP, STATIC_UID, WEB_APP, WEB_INIT, WEB_PENDING, WEB_SIDECAR, WEB_UID, hex64, latePod, otherPods, webPod } from "./test-kubelet.ts";

const list = (...items: unknown[]) => ({ kind: "PodList", apiVersion: "v1", metadata: {}, items });
const all = () => indexPodList(list(webPod(), ...otherPods(), latePod()));

function selectorsOf(pod: string, container: string): string[] {
  const got = findContainer(all(), pod, container);
  if (got.kind !== "found") throw new Error(`not found: ${got.kind}`);
  return podSelectors(got.pod, got.container);
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof AttestError ? e.code : `not an AttestError: ${String(e)}`;
  }
  return "no error";
}

const WEB_POD = [
  "k8s:ns:payments",
  "k8s:sa:web",
  "k8s:node-name:node-1",
  `k8s:pod-uid:${WEB_UID}`,
  "k8s:pod-name:web-7c9d8f6b5-x2x7q",
  "k8s:pod-image-count:3",
  "k8s:pod-init-image-count:1",
  "k8s:pod-image:registry.example/payments/web:1.4.2",
  `k8s:pod-image:registry.example/payments/web@sha256:${"2".repeat(64)}`,
  "k8s:pod-image:docker.io/envoyproxy/envoy:v1.30.1",
  `k8s:pod-image:docker.io/envoyproxy/envoy@sha256:${"3".repeat(64)}`,
  "k8s:pod-image:registry.example/payments/warmup:1",
  "k8s:pod-init-image:registry.example/payments/migrate:1.4.2",
  `k8s:pod-init-image:registry.example/payments/migrate@sha256:${"1".repeat(64)}`,
  "k8s:pod-label:app:web",
  "k8s:pod-label:app.kubernetes.io/name:web",
  "k8s:pod-label:pod-template-hash:7c9d8f6b5",
  "k8s:pod-label:tier:frontend",
  "k8s:pod-owner:ReplicaSet:web-7c9d8f6b5",
  "k8s:pod-owner-uid:ReplicaSet:5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
];

describe("kubelet pod list: selectors", () => {
  const table: [string, string, string, string[]][] = [
    ["the app container", WEB_UID, WEB_APP, [...WEB_POD, "k8s:container-name:app", "k8s:container-image:registry.example/payments/web:1.4.2", `k8s:container-image:registry.example/payments/web@sha256:${"2".repeat(64)}`]],
    ["the sidecar", WEB_UID, WEB_SIDECAR, [...WEB_POD, "k8s:container-name:envoy", "k8s:container-image:docker.io/envoyproxy/envoy:v1.30.1", `k8s:container-image:docker.io/envoyproxy/envoy@sha256:${"3".repeat(64)}`]],
    ["an init container", WEB_UID, WEB_INIT, [...WEB_POD, "k8s:container-name:migrate", "k8s:container-image:registry.example/payments/migrate:1.4.2", `k8s:container-image:registry.example/payments/migrate@sha256:${"1".repeat(64)}`]],
    [
      "another namespace",
      DNS_UID,
      DNS_APP,
      [
        "k8s:ns:kube-system",
        "k8s:sa:coredns",
        "k8s:node-name:node-1",
        `k8s:pod-uid:${DNS_UID}`,
        "k8s:pod-name:coredns-5d78c9869d-4xkqz",
        "k8s:pod-image-count:1",
        "k8s:pod-init-image-count:0",
        "k8s:pod-image:registry.k8s.io/coredns/coredns:v1.10.1",
        `k8s:pod-image:registry.k8s.io/coredns/coredns@sha256:${"4".repeat(64)}`,
        "k8s:pod-label:k8s-app:kube-dns",
        "k8s:pod-label:pod-template-hash:5d78c9869d",
        "k8s:pod-owner:ReplicaSet:coredns-5d78c9869d",
        "k8s:pod-owner-uid:ReplicaSet:11111111-2222-4333-8444-555555555555",
        "k8s:container-name:coredns",
        "k8s:container-image:registry.k8s.io/coredns/coredns:v1.10.1",
        `k8s:container-image:registry.k8s.io/coredns/coredns@sha256:${"4".repeat(64)}`,
      ],
    ],
    [
      "a static pod: no service account, owned by the node",
      STATIC_UID,
      STATIC_APP,
      [
        "k8s:ns:kube-system",
        "k8s:node-name:node-1",
        `k8s:pod-uid:${STATIC_UID}`,
        "k8s:pod-name:kube-apiserver-node-1",
        "k8s:pod-image-count:1",
        "k8s:pod-init-image-count:0",
        "k8s:pod-image:registry.k8s.io/kube-apiserver:v1.29.4",
        `k8s:pod-image:registry.k8s.io/kube-apiserver@sha256:${"5".repeat(64)}`,
        "k8s:pod-label:component:kube-apiserver",
        "k8s:pod-label:tier:control-plane",
        "k8s:pod-owner:Node:node-1",
        "k8s:pod-owner-uid:Node:66666666-7777-4888-9999-000000000000",
        "k8s:container-name:kube-apiserver",
        "k8s:container-image:registry.k8s.io/kube-apiserver:v1.29.4",
        `k8s:container-image:registry.k8s.io/kube-apiserver@sha256:${"5".repeat(64)}`,
      ],
    ],
    [
      "no labels, no owner",
      LATE_UID,
      LATE_APP,
      [
        "k8s:ns:default",
        "k8s:sa:default",
        "k8s:node-name:node-1",
        `k8s:pod-uid:${LATE_UID}`,
        "k8s:pod-name:late",
        "k8s:pod-image-count:1",
        "k8s:pod-init-image-count:0",
        "k8s:pod-image:busybox:1.36",
        `k8s:pod-image:docker.io/library/busybox@sha256:${"6".repeat(64)}`,
        "k8s:container-name:late",
        "k8s:container-image:busybox:1.36",
        `k8s:container-image:docker.io/library/busybox@sha256:${"6".repeat(64)}`,
      ],
    ],
  ];
  for (const [name, pod, container, want] of table) {
    test(name, () => expect(selectorsOf(pod, container)).toEqual(want));
  }
});

describe("kubelet pod list: lookups", () => {
  test("a pod not listed, a container not in the pod, a container not started yet", () => {
    expect(findContainer(all(), "00000000-0000-4000-8000-000000000000", WEB_APP).kind).toBe("no_pod");
    expect(findContainer(all(), WEB_UID, DNS_APP).kind).toBe("no_container"); // in another pod
    expect(findContainer(all(), WEB_UID, WEB_PENDING).kind).toBe("no_container");
  });

  test("container ids of every runtime's form", () => {
    const table: [string | null | undefined, string | null][] = [
      [`containerd://${WEB_APP}`, WEB_APP],
      [`cri-o://${WEB_APP}`, WEB_APP],
      [`docker://${WEB_APP}`, WEB_APP],
      ["", null],
      [null, null],
      [undefined, null],
      [WEB_APP, null],
      [`://${WEB_APP}`, null],
    ];
    for (const [raw, want] of table) expect(runtimeIdOf(raw)).toBe(want);
  });

  test("an empty list, items null (a Go nil slice), items without UIDs", () => {
    expect(indexPodList({ kind: "PodList", items: [] }).size).toBe(0);
    expect(indexPodList({ kind: "PodList", items: null }).size).toBe(0);
    expect(indexPodList({ items: [null, 1, { metadata: {} }, { metadata: { uid: 7 } }, webPod()] }).size).toBe(1);
  });

  test("refused answers: attest_kubelet_bad_answer", () => {
    const table: [string, () => unknown][] = [
      ["not an object", () => indexPodList("pods")],
      ["items not an array", () => indexPodList({ items: {} })],
      ["another kind", () => indexPodList({ kind: "Pod", items: [] })],
      ["a UID listed twice", () => findContainer(indexPodList(list(webPod(), webPod())), WEB_UID, WEB_APP)],
      ["the pod without a namespace", () => findContainer(indexPodList(list({ ...webPod(), metadata: { uid: WEB_UID, name: "x" } })), WEB_UID, WEB_APP)],
      ["a label value not a string", () => findContainer(indexPodList(list({ ...webPod(), metadata: { ...(webPod().metadata as object), labels: { a: 1 } } })), WEB_UID, WEB_APP)],
      ["statuses not an array", () => findContainer(indexPodList(list({ ...webPod(), status: { containerStatuses: "x" } })), WEB_UID, WEB_APP)],
      [
        "two statuses with the container's id",
        () => findContainer(indexPodList(list({ ...webPod(), status: { containerStatuses: [{ name: "a", containerID: `containerd://${WEB_APP}` }, { name: "b", containerID: `cri-o://${WEB_APP}` }] } })), WEB_UID, WEB_APP),
      ],
    ];
    for (const [name, f] of table) expect(`${name}: ${codeOf(f)}`).toBe(`${name}: attest_kubelet_bad_answer`);
  });

  test("another pod's malformed entry does not matter", () => {
    const idx = indexPodList(list({ metadata: { uid: DNS_UID } }, webPod()));
    expect(findContainer(idx, WEB_UID, WEB_APP).kind).toBe("found");
    expect(codeOf(() => findContainer(idx, DNS_UID, DNS_APP))).toBe("attest_kubelet_bad_answer");
    expect(hex64("ab")).toHaveLength(64);
  });
});

describe("kubelet pod list under arbitrary input (STYLE.md point 6)", () => {
  test("any JSON value, or a pod with any field replaced: a lookup or an AttestError, never anything else", () => {
    const lookUp = (body: unknown) => {
      try {
        const got = findContainer(indexPodList(body), WEB_UID, WEB_APP);
        if (got.kind === "found") podSelectors(got.pod, got.container);
      } catch (e) {
        if (!(e instanceof AttestError)) throw e;
      }
    };
    fc.assert(fc.property(fc.jsonValue(), (j) => lookUp(j)), { numRuns: fuzzRuns(300) });
    fc.assert(
      fc.property(fc.constantFrom("metadata", "spec", "status"), fc.jsonValue(), (key, j) => lookUp(list({ ...webPod(), [key]: j }))),
      { numRuns: fuzzRuns(300) },
    );
    const meta = webPod().metadata as Record<string, unknown>;
    fc.assert(
      fc.property(fc.constantFrom("name", "namespace", "labels", "ownerReferences"), fc.jsonValue(), (key, j) => lookUp(list({ ...webPod(), metadata: { ...meta, [key]: j } }))),
      { numRuns: fuzzRuns(300) },
    );
  });
});
