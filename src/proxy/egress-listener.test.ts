// The egress listener's door: with the audit log unwritable and audit.on_failure refuse
// (`accepting` false), a connection is closed at once and nothing of it is served; otherwise every
// connection, even one refused for want of a kernel record, gets its conn_open and conn_close.
import { afterEach, describe, expect, test } from "bun:test";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { createLogger } from "../runtime/log.ts";
import { startEgressListener, type EgressDeps, type EgressListener } from "./egress-listener.ts";

let listener: EgressListener | null = null;
afterEach(() => {
  listener?.stop();
  listener = null;
});

function start(deps: EgressDeps): EgressListener {
  for (let i = 0; i < 20; i++) {
    try {
      return startEgressListener(20_000 + Math.floor(Math.random() * 40_000), deps);
    } catch {
      // taken: another port
    }
  }
  throw new Error("no free port");
}

/** Connects, sends a request, and resolves with what came back once the listener closed. */
function exchange(port: number): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  let got = "";
  void Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open: (s) => void s.write("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"),
      data: (_s, d) => void (got += d.toString()),
      close: () => resolve(got),
      end: () => resolve(got),
      error: () => resolve(got),
    },
  });
  return promise;
}

const deps = (accepting: boolean, audit = memoryAudit()): EgressDeps & { audit: ReturnType<typeof memoryAudit> } => ({
  lookupRecord: () => null,
  identify: async () => ({ ok: false, workload: null, reason: "none", detail: "" }),
  engine: () => null,
  names: () => ({ resolve: async () => [] }),
  logger: createLogger({ write: () => {} }),
  audit,
  accepting: () => accepting,
});

describe("egress listener and the audit log", () => {
  test("not accepting (the log cannot be written, on_failure refuse): closed at once, nothing recorded or served", async () => {
    const d = deps(false);
    listener = start(d);
    expect(await exchange(listener.port)).toBe("");
    await Bun.sleep(50);
    expect(d.audit.events).toEqual([]);
  });

  test("accepting: a connection without a kernel record is refused, with its conn_open and conn_close", async () => {
    const d = deps(true);
    listener = start(d);
    expect(await exchange(listener.port)).toBe("");
    const deadline = Date.now() + 3000;
    while (d.audit.of("conn_close").length === 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(d.audit.events.map((e) => e.type)).toEqual(["conn_open", "conn_close"]);
    expect(d.audit.of("conn_close")[0]).toMatchObject({ side: "egress", decision: "deny", outcome: "refused", reason: "no_record" });
  });
});
