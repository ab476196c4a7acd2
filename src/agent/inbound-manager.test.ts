// What the inbound manager says of a listener it cannot serve (tidegate status shows it): one
// waiting for its SVID, one whose address another program holds. And, over real mutual TLS, what
// its stop logs of an MCP call whose client lost its only connection mid-call.
import { describe, expect, test } from "bun:test";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { loadPolicy } from "../policy/index.ts";
import { memoryLogger } from "../runtime/log.ts";
import { createTestCa } from "../../test/helpers/test-ca.ts";
import { credentialOf, trustOf } from "../proxy/test-identity.ts";
import { encodePem } from "../x509/pem.ts";
import { waitFor } from "../../test/helpers/processes.ts";
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

describe("InboundManager.stop", () => {
  test("an MCP call whose client lost its only connection is awaited for a resume, not logged; the manager's stop logs it without an answer", async () => {
    const ca = await createTestCa();
    const server = await credentialOf(await ca.mintLeaf("/svc/mcp"));
    const client = await credentialOf(await ca.mintLeaf("/agent"));
    const trust = trustOf(ca);
    // a backend that takes the request and never answers
    let backendGot = "";
    const backend = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (_s, d) => void (backendGot += new TextDecoder().decode(d)) } });
    const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = probe.port;
    probe.stop(true);
    const audit = memoryAudit();
    const m = new InboundManager({ identity: { svid: () => server, trust: () => trust }, logger: memoryLogger(), audit });
    const policy = loadPolicy(
      `trust_domain: example.org
inbound:
  - { name: mcp-in, id: spiffe://example.org/svc/mcp, listen: "127.0.0.1:${port}", forward: "127.0.0.1:${backend.port}", allow: "spiffe://example.org/agent", mcp: {} }
`,
      "i.yaml",
    );
    try {
      m.sync(policy);
      expect(m.status()[0]).toMatchObject({ state: "listening" });
      const body = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "slow", arguments: {} } });
      const request = `POST /mcp HTTP/1.1\r\nHost: mcp\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: s1\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const sock = await Bun.connect({
        hostname: "127.0.0.1",
        port,
        tls: { cert: client.chain.map((d) => encodePem("CERTIFICATE", d)).join(""), key: client.keyPem, ca: trust.allCaPem, rejectUnauthorized: false },
        socket: { handshake: (s) => void s.write(request), data() {} },
      });
      await waitFor("the call at the backend", () => (backendGot.includes('"slow"') ? true : undefined), 5000, 10);
      sock.terminate(); // the client's only connection is lost (a reset: a FIN alone would still wait for the answer)
      await waitFor("the connection recorded closed", () => (audit.of("conn_close").length > 0 ? true : undefined), 5000, 10);
      expect(audit.of("tool_call")).toEqual([]);
      m.stop();
      expect(audit.of("tool_call")).toMatchObject([{ tool: "slow", decision: "allow", outcome: "no_answer", duration_ms: null }]);
    } finally {
      m.stop();
      backend.stop(true);
    }
  });
});
