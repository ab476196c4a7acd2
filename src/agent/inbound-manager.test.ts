// What the inbound manager says of a listener it cannot serve (tidegate status shows it): one
// waiting for its SVID, one whose address another program holds.
import { describe, expect, test } from "bun:test";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { loadPolicy } from "../policy/index.ts";
import { memoryLogger } from "../runtime/log.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { credentialOf, trustOf } from "../proxy/test-identity.ts";
import { InboundManager, NO_SVID } from "./inbound-manager.ts";

describe("InboundManager.status", () => {
  test("a listener whose id the agent holds no SVID for waits, saying what it needs; logged once", () => {
    const logger = memoryLogger();
    const m = new InboundManager({ identity: { svid: () => null, trust: () => { throw new Error("not asked while waiting"); } }, logger, audit: memoryAudit() });
    const policy = loadPolicy(
      `trust_domain: example.org
inbound:
  - { name: echo-in, id: spiffe://example.org/svc/echo, listen: "127.0.0.1:18500", forward: "127.0.0.1:9", allow: "spiffe://example.org/**" }
`,
      "i.yaml",
    );
    m.sync(policy);
    m.sync(policy);
    expect(m.status()).toEqual([{ rule: "echo-in", listen: "127.0.0.1:18500", id: "spiffe://example.org/svc/echo", state: "waiting", detail: NO_SVID }]);
    expect(NO_SVID).toBe("no SVID for its id yet: an entry of this node with that SPIFFE ID (tidegate up makes one)");
    expect(logger.lines.filter((l) => l.event === "inbound_waiting")).toHaveLength(1);
    m.stopAccepting();
  });

  test("a listener whose address another program holds: failed, saying so; logged once", async () => {
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const logger = memoryLogger();
    const ca = await createTestCa();
    const credential = await credentialOf(await ca.mintLeaf("/svc/echo"));
    const trust = trustOf(ca);
    const m = new InboundManager({ identity: { svid: () => credential, trust: () => trust }, logger, audit: memoryAudit() });
    const policy = loadPolicy(
      `trust_domain: example.org
inbound:
  - { name: echo-in, id: spiffe://example.org/svc/echo, listen: "127.0.0.1:${taken.port}", forward: "127.0.0.1:9", allow: "spiffe://example.org/**" }
`,
      "i.yaml",
    );
    try {
      m.sync(policy);
      m.sync(policy);
      expect(m.status()).toEqual([{ rule: "echo-in", listen: `127.0.0.1:${taken.port}`, id: "spiffe://example.org/svc/echo", state: "failed", detail: `EADDRINUSE: another program listens on 127.0.0.1:${taken.port}; retried every second` }]);
      expect(logger.lines.filter((l) => l.event === "inbound_failed")).toHaveLength(1);
    } finally {
      m.stopAccepting();
      taken.stop(true);
    }
  });
});
