// `tidegate run --mcp-stdio` under audit.on_failure: refuse (the default): while the audit log
// cannot be written, no stdio session starts and a session already open takes no more requests,
// as the egress proxy refuses new connections and an intercepted connection's next request.
import { describe, expect, test } from "bun:test";
import { SpiffeId } from "../spiffe/index.ts";
import { loadPolicy } from "../policy/load.ts";
import { PinBook } from "../mcp/index.ts";
import { Enforcer, type EnforcerOptions } from "./enforcer.ts";

const POLICY = loadPolicy(
  "trust_domain: example.org\nstdio:\n  - name: host-tools\n    from: spiffe://example.org/host\n    server: spiffe://example.org/mcp/tools\n    mcp: { tools: {} }\n",
  "p.yaml",
);

function enforcerWith(accepting: () => boolean, events: [string, Record<string, unknown>][]): Enforcer {
  const enforcement = {
    identityOf: () => ({ id: SpiffeId.parse("spiffe://example.org/mcp/tools") }),
    identifyPid: async () => ({ ok: true as const, id: "spiffe://example.org/host", selectors: ["unix:uid:0"] }),
    holdsIdentity: () => () => true,
    stillIdentifies: () => true,
  };
  const o = { audit: { emit: (type: string, fields: Record<string, unknown>) => void events.push([type, fields]) }, accepting } as unknown as EnforcerOptions;
  const none = undefined as never;
  return new Enforcer(none, { policy: POLICY } as never, enforcement as never, none, none, null, new PinBook(), none, o, undefined, none, () => 0);
}

const call = (id: number) => JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "echo", arguments: { message: "hi" } } });

describe("--mcp-stdio while the audit log cannot be written (on_failure: refuse)", () => {
  test("no session starts; an open one refuses its next tools/call and ends", async () => {
    let healthy = true;
    const events: [string, Record<string, unknown>][] = [];
    const e = enforcerWith(() => healthy, events);
    const open = await e.mcpStdioGate(4242, 0, "tools");
    if (!("gate" in open)) throw new Error(`refused: ${open.refused.message}`);
    expect((await open.gate.fromClient(call(1))).pass).toBe(true);
    healthy = false;
    const refused = await open.gate.fromClient(call(2));
    expect(refused.pass).toBe(false);
    expect(refused).toMatchObject({ reason: "audit_unavailable", close: true });
    expect(events.at(-1)).toMatchObject(["tool_call", { decision: "deny", reason: "audit_unavailable" }]);
    const later = await e.mcpStdioGate(4242, 0, "tools");
    expect(later).toMatchObject({ refused: { code: "run_audit_unavailable" } });
  });
});
