/**
 * Opens an upstream leg of the egress proxy and says whether it may carry bytes:
 * - plain: ready once connected;
 * - `tls`: ready once the handshake verified against the system roots or the rule's CA and the
 *   name sent (Bun's own verification, `authorized`);
 * - `mtls`: presents the workload's X.509-SVID; ready once tidegate's verifier accepted the peer's
 *   chain against the bundle of `server_id`'s trust domain AND the verified SPIFFE ID equals
 *   `server_id`. Refusals: `peer_untrusted` (with the verifier's code), `peer_id_mismatch` (with the
 *   ID presented). Bun's `authorized` is not used here (peer-tls.ts says why).
 * A leg not ready within the connect bound (`proxy.connect_timeout`, default UPSTREAM_TIMEOUT_MS:
 * connect, handshake and verification together) is given up (`upstream_connect_timeout`); so is
 * one that never completes its TCP connect. mTLS legs speak TLS 1.3 only.
 * TLS legs offer the session of the last leg with the same key (session-cache.ts) and keep the new
 * one once the upstream has sent something (TLS 1.3 tickets come after the handshake). The socket stays paused from the handshake until the caller attaches a splice, and what the
 * upstream sent before that is kept and handed over, so no byte is lost or early.
 */
import type { Socket } from "bun";
import type { IpAddress } from "../policy/address.ts";
import type { KeyExchange } from "../policy/model.ts";
import type { SpiffeId } from "../spiffe/id.ts";
import { chainPem } from "../x509/pem.ts";
import type { CaFile } from "./ca-file.ts";
import type { Credential, TrustNow } from "./identity-source.ts";
import { randomConnectionId, tlsConnectionId } from "./peer-tls.ts";
import type { PeerVerifier } from "./peer-verifier.ts";
import type { SessionCache } from "./session-cache.ts";
import type { Splice } from "./splice.ts";

/** `keyExchange` absent: "hybrid" (the rule's `upstream.key_exchange`, KEY_EXCHANGES in policy/model.ts). */
export type UpstreamTls =
  | { readonly kind: "tls"; readonly serverName: string | null; readonly ca: CaFile | null; readonly keyExchange?: KeyExchange }
  | { readonly kind: "mtls"; readonly serverName: string | null; readonly serverId: SpiffeId; readonly credential: Credential; readonly trust: TrustNow; readonly caPem: string; readonly keyExchange?: KeyExchange };

export interface UpstreamPlan {
  readonly address: IpAddress;
  readonly port: number;
  readonly tls: UpstreamTls | null;
}

export interface UpData {
  sp: Splice | null;
  /** What the upstream sent before the splice was attached. */
  early: Uint8Array[];
  ended: boolean;
  closed: boolean;
  /** The upstream reset its end (ECONNRESET) rather than closing it in order. */
  reset: boolean;
  sessionKey: string | null;
  sessionSaved: boolean;
}

export type UpstreamResult =
  | { readonly ok: true; readonly socket: Socket<UpData>; readonly connId: Uint8Array; readonly resumed: boolean | null; readonly peerId: string | null; /** mtls: the peer's ID and the bundle authority its path ended at (peer-verifier.ts `stillAnchored`). */ readonly peer?: { readonly id: SpiffeId; readonly anchor: Uint8Array } }
  | {
      readonly ok: false;
      readonly outcome: "refused" | "upstream_failed";
      readonly reason: string | null;
      readonly detail: string;
      /** The peer's verified SPIFFE ID (peer_id_mismatch), else null. */
      readonly peerId: string | null;
      /** What an unverified leaf claims (peer_untrusted), for the log only. */
      readonly claimedId: string | null;
      readonly connId: Uint8Array | null;
    };

export interface UpstreamDeps {
  readonly sessions: SessionCache;
  readonly verifier: PeerVerifier;
  /** From connect to a leg ready for bytes (`proxy.connect_timeout`; default UPSTREAM_TIMEOUT_MS). */
  readonly timeoutMs?: number;
}

/** Connect, handshake and verification together; an upstream that stalls is given up. */
export const UPSTREAM_TIMEOUT_MS = 10_000;
/** mTLS legs speak TLS 1.3 only (BoringSSL's TLS1_3_VERSION), as inbound listeners do. */
const TLS_1_3 = 0x0304;

/** Everything a resumed session would vouch for (session-cache.ts). */
export function sessionKeyOf(plan: UpstreamPlan): string | null {
  const t = plan.tls;
  if (t === null) return null;
  const base = `${plan.address.text}|${plan.port}|${t.serverName ?? ""}${t.keyExchange === "classical" ? "|classical" : ""}`;
  return t.kind === "tls" ? `tls|${base}|${t.ca === null ? "system" : t.ca.id}` : `mtls|${base}|${t.serverId.toString()}|${t.credential.serial}|${t.trust.generation}`;
}

/** The PEM of a credential's chain, made once per credential. */
const pemOf = new WeakMap<Credential, string>();
function certPem(c: Credential): string {
  let p = pemOf.get(c);
  if (p === undefined) {
    p = chainPem(c.chain);
    pemOf.set(c, p);
  }
  return p;
}

/** The groups a `classical` leg offers (BoringSSL names): the hybrid's default without X25519MLKEM768. */
const CLASSICAL_GROUPS = "X25519:P-256:P-384";

/**
 * A leg with a name sends it as SNI. A leg to an address (a cidr rule) sends none: left unset, Bun
 * would send the dialled IP literal, which RFC 6066 section 3 does not allow. The certificate is
 * still checked against the dialled address (its IP SAN) with `tls`.
 */
function tlsOptions(t: UpstreamTls): Record<string, unknown> {
  const name = { serverName: t.serverName ?? "" };
  const kx = t.keyExchange === "classical" ? { ecdhCurve: CLASSICAL_GROUPS } : {};
  if (t.kind === "tls") return { rejectUnauthorized: true, ...name, ...kx, ...(t.ca !== null ? { ca: t.ca.pem } : {}) };
  return { rejectUnauthorized: false, minVersion: TLS_1_3, cert: certPem(t.credential), key: t.credential.keyPem, ca: t.caPem, ...name, ...kx };
}

function saveSession(up: Socket<UpData>, deps: UpstreamDeps): void {
  const d = up.data;
  if (d.sessionKey === null || d.sessionSaved) return;
  try {
    const s = (up as unknown as { getSession(): Uint8Array | undefined }).getSession();
    if (s !== undefined && s.length > 0) {
      deps.sessions.set(d.sessionKey, new Uint8Array(s));
      d.sessionSaved = true;
    }
  } catch {
    // no session to keep (yet)
  }
}

export function openUpstream(plan: UpstreamPlan, deps: UpstreamDeps): Promise<UpstreamResult> {
  const { promise, resolve } = Promise.withResolvers<UpstreamResult>();
  let settled = false;
  let opened: Socket<UpData> | null = null;
  const timeoutMs = deps.timeoutMs ?? UPSTREAM_TIMEOUT_MS;
  const timer = setTimeout(() => {
    fail(null, "upstream_failed", "upstream_connect_timeout", `the upstream was not ready (connected${plan.tls !== null ? ", handshaken, verified" : ""}) within ${timeoutMs} ms`);
    opened?.terminate();
  }, timeoutMs);
  const done = (r: UpstreamResult) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    resolve(r);
  };
  const fail = (up: Socket<UpData> | null, outcome: "refused" | "upstream_failed", reason: string | null, detail: string, ids: { peerId?: string; claimedId?: string | null; connId?: Uint8Array | null } = {}) => {
    done({ ok: false, outcome, reason, detail, peerId: ids.peerId ?? null, claimedId: ids.claimedId ?? null, connId: ids.connId ?? null });
    up?.end();
  };
  const t = plan.tls;
  const sessionKey = sessionKeyOf(plan);
  const ready = (up: Socket<UpData>, peer: { id: SpiffeId; anchor: Uint8Array } | null) => {
    const tls = t !== null;
    done({ ok: true, socket: up, connId: (tls ? tlsConnectionId(up as never) : null) ?? randomConnectionId(), resumed: tls ? up.isSessionReused() : null, peerId: peer?.id.toString() ?? null, ...(peer !== null ? { peer } : {}) });
  };
  const verifyPeer = async (up: Socket<UpData>, m: Extract<UpstreamTls, { kind: "mtls" }>) => {
    up.pause();
    const connId = tlsConnectionId(up as never);
    const check = await deps.verifier.verifyPeer(up as never, m.trust.bundles, m.trust.generation);
    if (settled) return; // the deadline passed meanwhile
    if (up.data.closed) return fail(null, "upstream_failed", null, "the upstream closed during verification", { connId });
    if (!check.ok) return fail(up, "refused", "peer_untrusted", check.code, { claimedId: check.claimed, connId });
    if (!check.id.equals(m.serverId)) return fail(up, "refused", "peer_id_mismatch", `the upstream is ${check.id.toString()}, the rule wants ${m.serverId.toString()}`, { peerId: check.id.toString(), connId });
    ready(up, { id: check.id, anchor: check.anchor });
  };
  Bun.connect<UpData>({
    hostname: plan.address.text,
    port: plan.port,
    allowHalfOpen: true,
    data: { sp: null, early: [], ended: false, closed: false, reset: false, sessionKey, sessionSaved: false },
    ...(t !== null ? { tls: tlsOptions(t) } : {}),
    socket: {
      open(up) {
        opened = up;
        if (settled) return void up.end(); // given up before it connected
        if (t === null) return ready(up, null);
        const s = sessionKey === null ? undefined : deps.sessions.get(sessionKey);
        if (s !== undefined) (up as unknown as { setSession(s: Uint8Array): void }).setSession(s);
      },
      handshake(up, authorized, error) {
        if (t === null || settled) return;
        // A handshake that failed before any certificate was judged (an errno-style code: EPROTO
        // from an upstream that does not speak TLS there, ECONNRESET) is not an unverified peer.
        const code = (error as { code?: string } | null)?.code;
        if (code !== undefined && /^E[A-Z]+$/.test(code)) return fail(up, "refused", "upstream_tls_failed", `${code}: ${error!.message}`);
        if (t.kind === "mtls") {
          verifyPeer(up, t).catch((e: unknown) => fail(up, "upstream_failed", "internal_error", e instanceof Error ? e.message : String(e)));
          return;
        }
        if (authorized && error == null) return ready(up, null);
        fail(up, "refused", "upstream_tls_unverified", code ?? error?.message ?? "not authorized");
      },
      data(up, chunk) {
        saveSession(up, deps);
        const d = up.data;
        if (d.sp !== null) return d.sp.down.data(chunk);
        d.early.push(new Uint8Array(chunk));
      },
      drain: (up) => up.data.sp?.up.drain(),
      end(up) {
        if (up.data.sp !== null) return up.data.sp.down.ended();
        up.data.ended = true;
      },
      close(up, error?: Error) {
        saveSession(up, deps);
        up.data.closed = true;
        up.data.reset = (error as { code?: string } | undefined)?.code === "ECONNRESET";
        if (up.data.sp !== null) return up.data.sp.upstreamClosed(up.data.reset);
        fail(null, "upstream_failed", null, "the upstream closed before it was ready");
      },
      connectError: (_up, e) => fail(null, "upstream_failed", null, e.message),
      timeout: (up) => void up.end(),
    },
  }).catch((e: unknown) => fail(null, "upstream_failed", null, e instanceof Error ? e.message : String(e)));
  return promise;
}
