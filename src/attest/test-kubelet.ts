/**
 * A stand-in kubelet for the kubelet attestor's tests (never shipped): `GET /pods` over real TLS
 * (node:https) on 127.0.0.1, port 0, with a server certificate from a test CA, answering 401 unless
 * the request carries `Authorization: Bearer <token>`; and a realistic PodList (two namespaces,
 * labels, owners, sidecars, init containers, a container not started yet, a static pod).
 */
import https from "node:https";
import type { AddressInfo } from "node:net";
import { createTestCa, type TestCa } from "../../test/helpers/test-ca.ts";
import { encodePem, exportPkcs8Pem } from "../x509/index.ts";

export interface KubeletStandIn {
  readonly url: string;
  readonly port: number;
  readonly ca: TestCa;
  /** The CA that signed the serving certificate, as PEM (what the CA file holds). */
  readonly caPem: string;
  /** The accepted bearer token (change it to rotate). */
  token: string;
  /** The pods served, in order (mutate between polls). */
  pods: unknown[];
  /** When set, served instead of the PodList (status 200). */
  rawBody: string | Uint8Array | null;
  /** When true, the body is sent in 1 KiB chunks without a content-length. */
  chunked: boolean;
  /** When set, every request is answered with this status. */
  status: number | null;
  /** When true, requests are never answered. */
  hang: boolean;
  /** The Authorization header of every request, in order. */
  readonly auths: (string | undefined)[];
  close(): Promise<void>;
}

/** A stand-in kubelet whose certificate names `dnsNames` (default: `node-1`, not 127.0.0.1). */
export async function startKubelet(opts: { token: string; pods?: unknown[]; dnsNames?: string[] }): Promise<KubeletStandIn> {
  const ca = await createTestCa({ trustDomain: "kubelet.test" });
  const leaf = await ca.mintLeaf("/kubelet", { dnsNames: opts.dnsNames ?? ["node-1"] });
  const state = {
    token: opts.token,
    pods: opts.pods ?? [],
    rawBody: null as string | Uint8Array | null,
    status: null as number | null,
    chunked: false,
    hang: false,
    auths: [] as (string | undefined)[],
  };
  const server = https.createServer({ key: await exportPkcs8Pem(leaf.privateKey), cert: encodePem("CERTIFICATE", leaf.der) }, (req, res) => {
    if (self.hang) return;
    self.auths.push(req.headers.authorization);
    if (req.method !== "GET" || req.url !== "/pods") return void res.writeHead(404).end("404 page not found\n");
    if (req.headers.authorization !== `Bearer ${self.token}`) return void res.writeHead(401, { "content-type": "text/plain" }).end("Unauthorized\n");
    if (self.status !== null) return void res.writeHead(self.status, { "content-type": "text/plain" }).end("error\n");
    const body = self.rawBody ?? JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: {}, items: self.pods });
    if (!self.chunked) return void res.writeHead(200, { "content-type": "application/json" }).end(body);
    const bytes = typeof body === "string" ? Buffer.from(body) : body;
    res.writeHead(200, { "content-type": "application/json" });
    for (let i = 0; i < bytes.length; i += 1024) res.write(bytes.subarray(i, i + 1024));
    res.end();
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const port = (server.address() as AddressInfo).port;
  const self: KubeletStandIn = Object.assign(state, {
    url: `https://127.0.0.1:${port}`,
    port,
    ca,
    caPem: encodePem("CERTIFICATE", ca.root.der),
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  });
  return self;
}

// ---- A realistic PodList -------------------------------------------------------------------

export const hex64 = (c: string) => c.repeat(64).slice(0, 64);

export const WEB_UID = "3f1c2a9e-7b4d-4e8a-9c61-0d2b5e8f4a17";
export const WEB_APP = hex64("a1");
export const WEB_SIDECAR = hex64("b2");
export const WEB_INIT = hex64("c3");
export const WEB_PENDING = hex64("d4");
export const DNS_UID = "9e2d7c41-1a3b-4f5e-8d90-6c7b8a9f0e12";
export const DNS_APP = hex64("e5");
export const STATIC_UID = "6b1f0c9a2e8d4b7c5a3f1e0d9c8b7a6f";
export const STATIC_APP = hex64("f6");
export const LATE_UID = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
export const LATE_APP = hex64("07");

function status(name: string, image: string, id: string | null, digest: string | null): Record<string, unknown> {
  return {
    name,
    image,
    imageID: digest ?? "",
    ...(id !== null ? { containerID: `containerd://${id}` } : {}),
    ready: id !== null,
    restartCount: 0,
    started: id !== null,
    state: id !== null ? { running: { startedAt: "2024-05-01T10:00:00Z" } } : { waiting: { reason: "ContainerCreating" } },
  };
}

/** The web pod: namespace payments, a Deployment's ReplicaSet, app + sidecar + a waiting container, one init. */
export function webPod(): Record<string, unknown> {
  return {
    metadata: {
      name: "web-7c9d8f6b5-x2x7q",
      generateName: "web-7c9d8f6b5-",
      namespace: "payments",
      uid: WEB_UID,
      resourceVersion: "1234567",
      creationTimestamp: "2024-05-01T09:59:50Z",
      labels: { app: "web", "app.kubernetes.io/name": "web", "pod-template-hash": "7c9d8f6b5", tier: "frontend" },
      annotations: { "kubectl.kubernetes.io/restartedAt": "2024-05-01T09:59:00Z" },
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7c9d8f6b5", uid: "5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f", controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      serviceAccountName: "web",
      serviceAccount: "web",
      nodeName: "node-1",
      containers: [
        { name: "app", image: "registry.example/payments/web:1.4.2" },
        { name: "envoy", image: "docker.io/envoyproxy/envoy:v1.30.1" },
        { name: "warmup", image: "registry.example/payments/warmup:1" },
      ],
      initContainers: [{ name: "migrate", image: "registry.example/payments/migrate:1.4.2" }],
    },
    status: {
      phase: "Running",
      podIP: "10.244.1.17",
      initContainerStatuses: [status("migrate", "registry.example/payments/migrate:1.4.2", WEB_INIT, "registry.example/payments/migrate@sha256:" + "1".repeat(64))],
      containerStatuses: [
        status("app", "registry.example/payments/web:1.4.2", WEB_APP, "registry.example/payments/web@sha256:" + "2".repeat(64)),
        status("envoy", "docker.io/envoyproxy/envoy:v1.30.1", WEB_SIDECAR, "docker.io/envoyproxy/envoy@sha256:" + "3".repeat(64)),
        status("warmup", "registry.example/payments/warmup:1", null, null),
      ],
    },
  };
}

/** CoreDNS in kube-system, a static kube-apiserver pod (32-hex UID, owned by the Node). */
export function otherPods(): Record<string, unknown>[] {
  return [
    {
      metadata: {
        name: "coredns-5d78c9869d-4xkqz",
        namespace: "kube-system",
        uid: DNS_UID,
        labels: { "k8s-app": "kube-dns", "pod-template-hash": "5d78c9869d" },
        ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "coredns-5d78c9869d", uid: "11111111-2222-4333-8444-555555555555", controller: true }],
      },
      spec: { serviceAccountName: "coredns", nodeName: "node-1" },
      status: { phase: "Running", containerStatuses: [status("coredns", "registry.k8s.io/coredns/coredns:v1.10.1", DNS_APP, "registry.k8s.io/coredns/coredns@sha256:" + "4".repeat(64))] },
    },
    {
      metadata: {
        name: "kube-apiserver-node-1",
        namespace: "kube-system",
        uid: STATIC_UID,
        labels: { component: "kube-apiserver", tier: "control-plane" },
        ownerReferences: [{ apiVersion: "v1", kind: "Node", name: "node-1", uid: "66666666-7777-4888-9999-000000000000", controller: true }],
      },
      spec: { nodeName: "node-1" },
      status: { phase: "Running", containerStatuses: [status("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.29.4", STATIC_APP, "registry.k8s.io/kube-apiserver@sha256:" + "5".repeat(64))] },
    },
  ];
}

/** A pod that shows up later (default namespace, default service account, no labels). */
export function latePod(): Record<string, unknown> {
  return {
    metadata: { name: "late", namespace: "default", uid: LATE_UID },
    spec: { serviceAccountName: "default", nodeName: "node-1" },
    status: { phase: "Running", containerStatuses: [status("late", "busybox:1.36", LATE_APP, "docker.io/library/busybox@sha256:" + "6".repeat(64))] },
  };
}

/** A systemd-driver containerd cgroup path for a container of a burstable pod. */
export function podCgroup(podUid: string, containerId: string): string {
  const slice = podUid.replaceAll("-", "_");
  return `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${slice}.slice/cri-containerd-${containerId}.scope`;
}
