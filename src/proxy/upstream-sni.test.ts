// The server name an upstream leg sends: a rule's host name as SNI, and none for a leg to an
// address (a cidr rule), since RFC 6066 section 3 does not allow an IP literal there; verification
// against the address's IP SAN is unchanged (Bun checks the dialled address either way).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { waitFor } from "../../test/helpers/processes.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { parseIp } from "../policy/address.ts";
import { SpiffeId, TrustDomain } from "../spiffe/index.ts";
import { chainPem } from "../x509/pem.ts";
import type { Credential, TrustNow } from "./identity-source.ts";
import { PeerVerifier } from "./peer-verifier.ts";
import { SessionCache } from "./session-cache.ts";
import { credentialOf, trustOf } from "./test-identity.ts";
import { openUpstream, type UpstreamTls } from "./upstream.ts";

const TD = TrustDomain.parse("example.org");
let credential: Credential;
let trust: TrustNow;
let server: Bun.TCPSocketListener<undefined>;
/** The server name each handshake gave, in order (null: none). */
const seen: (string | null)[] = [];

beforeAll(async () => {
  const ca = await createTestCa();
  const inter = await ca.mintIntermediate();
  credential = await credentialOf(await inter.mintLeaf("/client"));
  const backend = await credentialOf(await inter.mintLeaf("/backend"));
  trust = trustOf(ca, 1);
  server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: chainPem(backend.chain), key: backend.keyPem },
    socket: {
      handshake(s) {
        const name = (s as unknown as { getServername(): string | false | undefined }).getServername();
        seen.push(typeof name === "string" && name.length > 0 ? name : null);
      },
      data() {},
    },
  });
});
afterAll(() => server.stop(true));

const open = (tls: UpstreamTls) => openUpstream({ address: parseIp("127.0.0.1"), port: server.port, tls }, { sessions: new SessionCache(), verifier: new PeerVerifier(), timeoutMs: 5000 });
/**
 * The server names the server saw from `before` on, once it has seen one. The client's handshake
 * can finish before the server's handshake callback runs (under a loaded suite it did), so this
 * waits for the server's record rather than for a fixed time.
 */
const seenSince = (before: number) => waitFor("the server's handshake callback", () => (seen.length > before ? seen.slice(before) : undefined), 5000, 5);
const handshakes = async (tls: UpstreamTls) => {
  const before = seen.length;
  const r = await open(tls);
  if (r.ok) r.socket.end();
  return seenSince(before);
};

describe("the server name an upstream leg sends", () => {
  test("tls with a rule's host name: that name", async () => {
    expect(await handshakes({ kind: "tls", serverName: "api.test", ca: null })).toEqual(["api.test"]);
  });
  test("tls to an address (no name): no server_name, not the IP literal", async () => {
    expect(await handshakes({ kind: "tls", serverName: null, ca: null })).toEqual([null]);
  });
  test("mtls to an address: no server_name; the leg verifies and opens", async () => {
    const before = seen.length;
    const r = await open({ kind: "mtls", serverName: null, serverId: SpiffeId.parse("spiffe://example.org/backend"), credential, trust, caPem: trust.caPem(TD)! });
    expect(r).toMatchObject({ ok: true, peerId: "spiffe://example.org/backend" });
    if (r.ok) r.socket.end();
    expect(await seenSince(before)).toEqual([null]);
  });
});
