// A reload that comes after the enforcer stopped (enforcer.ts): single-host mode applies the
// config's workloads over HTTP before it reloads the agent's policy, so a SIGHUP just before a
// SIGTERM reached `reload` with the kernel maps closed, and the map's `bpf_closed` went out of the
// process as a stack trace (exit 1). After `stop`, a reload does nothing and says so (false).
import { describe, expect, test } from "bun:test";
import { PinBook } from "../mcp/index.ts";
import { Enforcer, type EnforcerOptions } from "./enforcer.ts";

function stand(): { enforcer: Enforcer; reloads: () => number } {
  let closed = false;
  let reloads = 0;
  const capture = { drainEvents() {}, close: () => void (closed = true) };
  const enforcement = {
    reload() {
      if (closed) throw Object.assign(new Error('bpf: map "tg_settings" used after close'), { code: "bpf_closed" });
      reloads++;
      return true;
    },
  };
  const listener = { stop() {}, recheck: () => Promise.resolve({ kept: 0, ended: 0 }) };
  const inbound = { stop() {}, sync: () => Promise.resolve({ kept: 0, ended: 0 }) };
  const o = { logger: { error() {}, info() {}, warn() {} }, audit: { emit() {} } } as unknown as EnforcerOptions;
  const none = undefined as never;
  const enforcer = new Enforcer(capture as never, { policy: null } as never, enforcement as never, listener as never, inbound as never, null, new PinBook(), none, o, undefined, { close() {} } as never, () => 0);
  return { enforcer, reloads: () => reloads };
}

describe("enforcer stop", () => {
  test("a reload before the stop reloads; one after it does nothing and does not throw", () => {
    const s = stand();
    expect(s.enforcer.reload()).toBe(true);
    s.enforcer.stop();
    expect(() => s.enforcer.reload()).not.toThrow();
    expect(s.enforcer.reload()).toBe(false);
    expect(s.reloads()).toBe(1);
  });
});
