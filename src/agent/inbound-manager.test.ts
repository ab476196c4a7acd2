// What the inbound manager says of a listener it cannot serve yet (tidegate status shows it).
import { describe, expect, test } from "bun:test";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { loadPolicy } from "../policy/index.ts";
import { memoryLogger } from "../runtime/log.ts";
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
});
