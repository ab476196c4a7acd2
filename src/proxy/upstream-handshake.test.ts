// An upstream leg whose TLS handshake fails before any certificate is judged (the upstream does
// not speak TLS on that port, or drops the connection) is refused upstream_tls_failed, naming the
// TLS error; only a certificate that does not verify is upstream_tls_unverified.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { parseIp } from "../policy/address.ts";
import { SpiffeId, TrustDomain } from "../spiffe/index.ts";
import type { Credential, TrustNow } from "./identity-source.ts";
import { PeerVerifier } from "./peer-verifier.ts";
import { SessionCache } from "./session-cache.ts";
import { credentialOf, trustOf } from "./test-identity.ts";
import { openUpstream, type UpstreamTls } from "./upstream.ts";

const TD = TrustDomain.parse("example.org");
let credential: Credential;
let trust: TrustNow;
/** Answers in plain HTTP whatever it is sent. */
const plainHttp = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s) => void (s.write("HTTP/1.0 400 Bad Request\r\n\r\n"), s.end()) } });
/** Closes as soon as anything comes. */
const dropper = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s) => void s.end() } });

beforeAll(async () => {
  const ca = await createTestCa();
  credential = await credentialOf(await (await ca.mintIntermediate()).mintLeaf("/client"));
  trust = trustOf(ca, 1);
});
afterAll(() => {
  plainHttp.stop(true);
  dropper.stop(true);
});

const open = (port: number, tls: UpstreamTls) => openUpstream({ address: parseIp("127.0.0.1"), port, tls }, { sessions: new SessionCache(), verifier: new PeerVerifier(), timeoutMs: 5000 });
const tlsLeg = (): UpstreamTls => ({ kind: "tls", serverName: "api.test", ca: null });
const mtlsLeg = (): UpstreamTls => ({ kind: "mtls", serverName: null, serverId: SpiffeId.parse("spiffe://example.org/backend"), credential, trust, caPem: trust.caPem(TD)! });

describe("a TLS handshake that fails before any certificate", () => {
  for (const [name, leg] of [["tls", tlsLeg], ["mtls", mtlsLeg]] as const) {
    test(`${name}: an upstream speaking plain HTTP there is upstream_tls_failed, EPROTO with the TLS error`, async () => {
      const r = await open(plainHttp.port, leg());
      expect(r).toMatchObject({ ok: false, outcome: "refused", reason: "upstream_tls_failed" });
      expect(!r.ok && r.detail).toMatch(/^EPROTO: .*WRONG_VERSION_NUMBER/);
    });
    test(`${name}: an upstream that drops the connection mid-handshake is upstream_tls_failed, ECONNRESET`, async () => {
      const r = await open(dropper.port, leg());
      expect(r).toMatchObject({ ok: false, outcome: "refused", reason: "upstream_tls_failed" });
      expect(!r.ok && r.detail).toStartWith("ECONNRESET: ");
    });
  }
});
