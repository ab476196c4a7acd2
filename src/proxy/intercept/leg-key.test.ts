// sameKeyParts (exchange.ts): the exchange reuses the last leg key only when sessionKeyOf would
// give the same text, so a rotated SVID, a new trust generation or another CA gets a new leg.
import { expect, test } from "bun:test";
import { sameKeyParts } from "./exchange.ts";
import { sessionKeyOf, type UpstreamTls } from "../upstream.ts";
import { parseIp } from "../../policy/address.ts";
import { SpiffeId } from "../../spiffe/index.ts";
import type { Credential, TrustNow } from "../identity-source.ts";

const cred = (serial: string) => ({ serial }) as unknown as Credential;
const trust = (generation: number) => ({ generation }) as unknown as TrustNow;
const ca = (id: string) => ({ pem: "PEM", id });
const id = (s: string) => SpiffeId.parse(s);

test("sameKeyParts says same exactly when the session keys are equal", () => {
  const c1 = cred("01");
  const t1 = trust(1);
  const caA = ca("aa");
  const variants: UpstreamTls[] = [
    { kind: "mtls", serverName: "b.test", serverId: id("spiffe://example.org/b"), credential: c1, trust: t1, caPem: "x" },
    { kind: "mtls", serverName: "b.test", serverId: id("spiffe://example.org/b"), credential: cred("01"), trust: trust(1), caPem: "y" }, // equal parts, other objects
    { kind: "mtls", serverName: "b.test", serverId: id("spiffe://example.org/b"), credential: cred("02"), trust: t1, caPem: "x" }, // rotated SVID
    { kind: "mtls", serverName: "b.test", serverId: id("spiffe://example.org/b"), credential: c1, trust: trust(2), caPem: "x" }, // new trust generation
    { kind: "mtls", serverName: "b.test", serverId: id("spiffe://example.org/c"), credential: c1, trust: t1, caPem: "x" },
    { kind: "mtls", serverName: null, serverId: id("spiffe://example.org/b"), credential: c1, trust: t1, caPem: "x" },
    { kind: "tls", serverName: "b.test", ca: caA },
    { kind: "tls", serverName: "b.test", ca: ca("aa") },
    { kind: "tls", serverName: "b.test", ca: ca("bb") },
    { kind: "tls", serverName: "b.test", ca: null },
    { kind: "tls", serverName: "c.test", ca: null },
  ];
  const address = parseIp("192.0.2.1");
  for (const a of variants) {
    for (const b of variants) {
      const equalKeys = sessionKeyOf({ address, port: 443, tls: a }) === sessionKeyOf({ address, port: 443, tls: b });
      // same => equal keys always; equal keys => same, except a null and an empty server name (a miss, never a wrong reuse)
      if (sameKeyParts(a, b)) expect(equalKeys).toBe(true);
      else expect(equalKeys).toBe(false);
    }
  }
});
