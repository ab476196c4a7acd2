// A reload or a registration change reaches egress connections already open whose bytes pass
// unparsed (egress-listener.ts `recheckConnection`, in-flight.ts `recheck`), over real loopback
// sockets: a workload's connection through the listener to an echo server, the policy swapped as
// an agent's reload swaps it, then the listener asked to recheck. Kept: the same treatment, even
// by a renamed rule or as `direct`; a look-up that fails; no policy change at all (the policy is not decided
// again). Ended, both ends reset and recorded `terminated`: the rule gone (`policy_changed`),
// another action (`policy_changed`, both named), the name no longer resolving to the address
// (`policy_changed`), the identity taken away (`identity_revoked`), and a reload that came while
// the connection's upstream leg was being made. And a reset from either end passes through the
// splice as a reset, never as an orderly end.
import type { Socket } from "bun";
import { afterEach, beforeAll, afterAll, describe, expect, test } from "bun:test";
import { memoryAudit, type MemoryAudit } from "../audit/sink/memory-audit.ts";
import { parseIp, type IpAddress } from "../policy/address.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { PolicyError } from "../policy/errors.ts";
import { loadPolicy } from "../policy/load.ts";
import { createLogger } from "../runtime/log.ts";
import { SpiffeId } from "../spiffe/index.ts";
import { recheckConnection, type EgressListener } from "./egress-listener.ts";
import { cuttingServer, endWatcher, startEgressOnFreePort, startWorkload, waitUntil, type WorkloadConn } from "./bounds-test-kit.ts";

const W = SpiffeId.parse("spiffe://example.org/w");
const HTTP = "GET / HTTP/1.1\r\nHost: echo.test\r\n\r\n";

let echo: { port: number; stop(force?: boolean): void };
/** Connections the echo server saw close, and those closed with an error (reset). */
const upstreamSeen = { closed: 0, cut: 0, bytes: 0 };
let listener: EgressListener | null = null;
let audit: MemoryAudit;
let engine: PolicyEngine;
let identified = true;
/** What echo.test resolves to; a function, so a test can make it fail or wait. */
let resolveEcho: () => Promise<readonly IpAddress[]>;

beforeAll(() => {
  echo = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data: (s: Socket<undefined>, d: Uint8Array) => {
        upstreamSeen.bytes += d.length;
        s.write(d);
      },
      close: (_s: Socket<undefined>, e?: Error) => {
        upstreamSeen.closed++;
        if (e !== undefined) upstreamSeen.cut++;
      },
    },
  });
});

afterAll(() => echo.stop(true));

afterEach(() => {
  listener?.stop();
  listener = null;
});

/** The policy: `rules` under `egress:`, each line one rule; PORT stands for the echo server's port. */
function policy(...rules: string[]): PolicyEngine {
  const text = `trust_domain: example.org\negress:\n${rules.map((r) => `  - ${r.replaceAll("PORT", String(echo.port))}\n`).join("")}`;
  return new PolicyEngine(loadPolicy(rules.length === 0 ? "trust_domain: example.org\n" : text, "t.yaml"));
}

const LOCAL = "{ name: local, from: spiffe://example.org/w, to: { cidr: 127.0.0.1/32, port: PORT }, action: passthrough }";
const NAMED = "{ name: named, from: spiffe://example.org/w, to: { host: echo.test, port: PORT }, action: passthrough }";

/** The listener, every connection recorded as W's toward 127.0.0.1:(the echo server's port). */
function start(first: PolicyEngine): number {
  audit = memoryAudit();
  engine = first;
  identified = true;
  resolveEcho = async () => [parseIp("127.0.0.1")];
  const record = { address: parseIp("127.0.0.1"), port: echo.port, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
  listener = startEgressOnFreePort({
    lookupRecord: () => record,
    identify: async () => ({ ok: true, id: W, workload: "w" }),
    engine: () => engine,
    names: () => ({ resolve: (n: string) => (n === "echo.test" ? resolveEcho() : Promise.resolve([])) }),
    logger: createLogger({ write: () => {} }),
    audit,
    stillIdentified: (workload, id) => identified && workload === "w" && id === W.toString(),
  });
  return listener.port;
}

/** A workload's connection that sent `first` and got it echoed back. */
async function forwarding(port: number, first: string): Promise<WorkloadConn> {
  const w = await startWorkload(port, first);
  await waitUntil("the echo", () => (w.text() === first ? true : undefined));
  return w;
}

/** `w` sends `text` and gets it back: its connection still forwards. */
async function stillEchoes(w: WorkloadConn, text: string): Promise<void> {
  const before = w.text();
  w.write(text);
  await waitUntil("the echo", () => (w.text() === before + text ? true : undefined));
}

const closes = () => audit.of("conn_close");

describe("a reload or a registration change reaches a spliced egress connection", () => {
  test("the same treatment, by a renamed rule or as direct, goes on; once no rule allows it, it is ended: policy_changed, both ends reset", async () => {
    const w = await forwarding(start(policy(LOCAL)), "one\n");
    engine = policy(LOCAL.replace("name: local", "name: renamed"));
    expect(await listener!.recheck()).toEqual({ cut: 0, failed: 0, error: null });
    engine = policy(LOCAL.replace("action: passthrough", "action: direct")); // the bytes would go as they are to the same address
    expect(await listener!.recheck()).toEqual({ cut: 0, failed: 0, error: null });
    await stillEchoes(w, "two\n");
    const cutBefore = upstreamSeen.cut;
    engine = policy();
    expect(await listener!.recheck()).toEqual({ cut: 1, failed: 0, error: null });
    expect((await w.done).error).toBe("ECONNRESET");
    await waitUntil("the upstream's end closed", () => (upstreamSeen.cut > cutBefore ? true : undefined));
    const [close] = closes();
    expect(close).toMatchObject({ rule: "local", outcome: "terminated", reason: "policy_changed", bytes_up: 8, bytes_down: 8 });
    expect(String(close!.detail)).toBe("a policy reload: the policy in force now refuses it (no_rule: deny: no rule matches)");
    expect(listener!.inFlight()).toBe(0);
  });

  test("another action for it (passthrough now tls): ended, the detail naming both", async () => {
    const w = await forwarding(start(policy(LOCAL)), "one\n");
    engine = policy(LOCAL.replace("action: passthrough", "action: tls"));
    expect((await listener!.recheck()).cut).toBe(1);
    expect((await w.done).error).toBe("ECONNRESET");
    expect(closes()[0]).toMatchObject({
      outcome: "terminated",
      reason: "policy_changed",
      detail: `a policy reload: the policy in force now decides allow tls by rule local (upstream port ${echo.port}), where this connection was given allow passthrough by rule local (upstream port ${echo.port})`,
    });
  });

  test("its workload's identity taken away: identity_revoked, with the policy unchanged", async () => {
    const w = await forwarding(start(policy(LOCAL)), "one\n");
    identified = false;
    expect((await listener!.recheck()).cut).toBe(1);
    expect((await w.done).error).toBe("ECONNRESET");
    expect(closes()[0]).toMatchObject({ outcome: "terminated", reason: "identity_revoked", detail: `workload w no longer has identity ${W.toString()} (its registration changed)` });
  });

  test("without a new policy the policy is not decided again; under one, a name that no longer resolves to the address ends it", async () => {
    const w = await forwarding(start(policy(NAMED)), HTTP);
    expect(closes()).toEqual([]);
    // echo.test moved elsewhere: with the same policy in force (a registration change) nothing is looked up.
    resolveEcho = async () => [parseIp("127.0.0.9")];
    expect((await listener!.recheck()).cut).toBe(0);
    await stillEchoes(w, "more");
    engine = policy(NAMED);
    expect((await listener!.recheck()).cut).toBe(1);
    expect((await w.done).error).toBe("ECONNRESET");
    const [close] = closes();
    expect(close).toMatchObject({ rule: "named", outcome: "terminated", reason: "policy_changed" });
    expect(String(close!.detail)).toStartWith("a policy reload: the policy in force now refuses it (address_not_resolved: ");
  });

  test("a look-up that fails says nothing new about the address: the connection goes on", async () => {
    const w = await forwarding(start(policy(NAMED)), HTTP);
    resolveEcho = async () => {
      throw new PolicyError("policy_dns_failed", "echo.test: SERVFAIL");
    };
    engine = policy(NAMED);
    expect(await listener!.recheck()).toEqual({ cut: 0, failed: 0, error: null });
    await stillEchoes(w, "more");
    w.end();
    await waitUntil("its conn_close", () => closes()[0]);
    expect(closes()[0]).toMatchObject({ rule: "named", outcome: "forwarded" });
  });

  /** echo.test's look-up held until `gate` is resolved (then 127.0.0.1); `asked`: it began. */
  function heldLookUp(): { gate: { resolve(): void }; asked: { promise: Promise<void> } } {
    const gate = Promise.withResolvers<void>();
    const asked = Promise.withResolvers<void>();
    resolveEcho = async () => {
      asked.resolve();
      await gate.promise;
      return [parseIp("127.0.0.1")];
    };
    return { gate, asked };
  }

  test("a reload while the connection was being decided: it is decided again as it starts to forward", async () => {
    const port = start(policy(NAMED));
    const { gate, asked } = heldLookUp();
    const w = await startWorkload(port, HTTP);
    await asked.promise; // decided under the first policy, waiting for the name
    engine = policy();
    expect((await listener!.recheck()).cut).toBe(0); // not forwarding yet: nothing to ask
    gate.resolve();
    expect((await w.done).error).toBe("ECONNRESET");
    const close = await waitUntil("its conn_close", () => closes()[0]);
    expect(close).toMatchObject({ rule: "named", outcome: "terminated", reason: "policy_changed" });
    expect(audit.of("conn_open")).toHaveLength(1);
  });

  test("a reload while it was being decided that refuses it: ended before its first bytes reach the upstream, even when the new decision takes a look-up", async () => {
    const port = start(policy(NAMED));
    const { gate, asked } = heldLookUp();
    const w = await startWorkload(port, HTTP);
    await asked.promise;
    engine = policy(NAMED); // a reload: echo.test now looked up again, slowly, and elsewhere
    resolveEcho = async () => {
      await Bun.sleep(300);
      return [parseIp("127.0.0.9")];
    };
    const before = upstreamSeen.bytes;
    gate.resolve();
    expect((await w.done).error).toBe("ECONNRESET");
    const close = await waitUntil("its conn_close", () => closes()[0]);
    expect(close).toMatchObject({ rule: "named", outcome: "terminated", reason: "policy_changed" });
    await Bun.sleep(100);
    expect(upstreamSeen.bytes - before).toBe(0);
  });
});

describe("recheckConnection on an mtls leg", () => {
  test("the upstream's authority gone from the bundles: peer_untrusted, before the policy is asked; still held: the policy decides", async () => {
    const anchor = new Uint8Array([1, 2, 3]);
    const peer = { id: SpiffeId.parse("spiffe://example.org/backend"), anchor };
    let held: Uint8Array[] = [anchor];
    const trust = () => ({ generation: 1, bundles: { x509Authorities: () => held }, caPem: () => null, allCaPem: "" });
    const record = { address: parseIp("127.0.0.1"), port: 443, proto: "tcp" as const, pid: 1, tgid: 1, uid: 0, gid: 0, cgroupId: 1n };
    const engineNow = policy(LOCAL.replace("PORT", "443"));
    const deps = { lookupRecord: () => null, identify: async () => ({ ok: false as const, workload: null, reason: "", detail: "" }), engine: () => engineNow, names: () => ({ resolve: async () => [] }), logger: createLogger({ write: () => {} }), audit: memoryAudit(), identity: { svid: () => null, trust } };
    const was = { decision: null, upstream: { address: parseIp("127.0.0.1"), port: 443 }, tls: null, fields: { action: "passthrough", summary: "allow passthrough by rule local (upstream port 443)" } };
    const caller = { record, id: W, workload: null };
    expect(await recheckConnection(caller, null, "other", was, deps, true, peer)).toBeNull();
    held = [new Uint8Array([9, 9, 9])];
    expect(await recheckConnection(caller, null, "other", was, deps, false, peer)).toEqual({ outcome: "terminated", reason: "peer_untrusted", detail: "the bundles in force no longer hold the authority that vouched for the upstream spiffe://example.org/backend (a bundle change)" });
  });
});

describe("a reset passes through a splice as a reset, never as an orderly end", () => {
  function startTo(port: number): number {
    audit = memoryAudit();
    engine = policy(LOCAL.replace("PORT", String(port)));
    const record = { address: parseIp("127.0.0.1"), port, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
    listener = startEgressOnFreePort({ lookupRecord: () => record, identify: async () => ({ ok: true, id: W, workload: "w" }), engine: () => engine, names: () => ({ resolve: async () => [] }), logger: createLogger({ write: () => {} }), audit });
    return listener.port;
  }

  test("the upstream resets mid-answer: the workload gets what came, then a reset (not a clean end it would take for the whole answer); recorded upstream_failed", async () => {
    const up = cuttingServer("the first half of a close-delimited answer", false);
    try {
      const w = await startWorkload(startTo(up.port), "GET / HTTP/1.0\r\n\r\n");
      expect(await w.done).toEqual({ text: "the first half of a close-delimited answer", error: "ECONNRESET" });
      const close = await waitUntil("its conn_close", () => closes()[0]);
      expect(close).toMatchObject({ outcome: "upstream_failed", detail: "the upstream reset its connection", bytes_down: 42 });
    } finally {
      up.stop(true);
    }
  });

  test("an orderly end stays one", async () => {
    const up = cuttingServer("a whole answer", true);
    try {
      const w = await startWorkload(startTo(up.port), "GET / HTTP/1.0\r\n\r\n");
      expect(await w.done).toEqual({ text: "a whole answer", error: null });
      expect(await waitUntil("its conn_close", () => closes()[0])).toMatchObject({ outcome: "forwarded" });
    } finally {
      up.stop(true);
    }
  });

  test("the workload resets mid-upload: the upstream gets a reset, not a FIN that would end the upload as if whole", async () => {
    const up = endWatcher();
    try {
      const w = await startWorkload(startTo(up.port), "PUT /file HTTP/1.0\r\n\r\nhalf of the up");
      await waitUntil("the conn_open", () => audit.of("conn_open")[0]);
      await Bun.sleep(50);
      w.reset();
      await waitUntil("the upstream's close", () => (up.seen() !== "none" ? true : undefined));
      expect(up.seen()).toBe("ECONNRESET");
      expect(await waitUntil("its conn_close", () => closes()[0])).toMatchObject({ outcome: "client_gone", detail: "the workload reset its connection" });
    } finally {
      up.stop(true);
    }
  });
});
