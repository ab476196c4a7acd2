// upstream.key_exchange on the wire: the ClientHello an upstream leg sends, read by a plain TCP
// listener (so nothing answers it; the leg then fails, which is not what is tested), and the
// groups it offers and shares a key for (RFC 8446 sections 4.2.7 and 4.2.8).
import { afterAll, describe, expect, test } from "bun:test";
import { parseIp } from "../policy/address.ts";
import type { KeyExchange } from "../policy/model.ts";
import { catchHellos } from "./hello-catcher.ts";
import { GROUP, offeredGroups as offered, sharedGroups as shared } from "./peek/hello-bytes.ts";
import { PeerVerifier } from "./peer-verifier.ts";
import { SessionCache } from "./session-cache.ts";
import { openUpstream, sessionKeyOf, type UpstreamPlan } from "./upstream.ts";

const { X25519MLKEM768, X25519, P256, P384 } = GROUP;

const catcher = catchHellos();
afterAll(() => catcher.stop());

/** The ClientHello of a leg opened with `keyExchange` (absent: the default). */
async function helloOf(keyExchange: KeyExchange | undefined): Promise<Uint8Array> {
  const next = catcher.next();
  const kx = keyExchange === undefined ? {} : { keyExchange };
  const plan: UpstreamPlan = { address: parseIp("127.0.0.1"), port: catcher.port, tls: { kind: "tls", serverName: "api.test", ca: null, ...kx } };
  const result = openUpstream(plan, { sessions: new SessionCache(), verifier: new PeerVerifier(), timeoutMs: 5000 });
  const hello = await next;
  expect((await result).ok).toBe(false); // nothing answered it
  return hello;
}

describe("upstream.key_exchange: the groups an upstream leg offers", () => {
  test("hybrid (the default): X25519MLKEM768 first, with a key for it and for X25519", async () => {
    for (const kx of [undefined, "hybrid" as const]) {
      const hello = await helloOf(kx);
      expect(offered(hello)[0]).toBe(X25519MLKEM768);
      expect(offered(hello)).toContain(X25519);
      expect(shared(hello)).toEqual([X25519MLKEM768, X25519]);
    }
  });

  test("classical: X25519, P-256 and P-384 only, a key for X25519 alone, and a ClientHello without the hybrid's 1,216-byte share", async () => {
    const classical = await helloOf("classical");
    expect(offered(classical)).toEqual([X25519, P256, P384]);
    expect(shared(classical)).toEqual([X25519]);
    const hybrid = await helloOf(undefined);
    expect(hybrid.length - classical.length).toBeGreaterThanOrEqual(1216);
  });

  test("a classical leg's sessions are kept apart from a hybrid one's (the key names it)", () => {
    const plan = (keyExchange?: KeyExchange): UpstreamPlan => ({ address: parseIp("127.0.0.1"), port: 443, tls: { kind: "tls", serverName: "api.test", ca: null, ...(keyExchange ? { keyExchange } : {}) } });
    expect(sessionKeyOf(plan("classical"))).not.toBe(sessionKeyOf(plan()));
    expect(sessionKeyOf(plan("hybrid"))).toBe(sessionKeyOf(plan()));
  });
});
