// The egress listener's door: with the audit log unwritable and audit.on_failure refuse
// (`accepting` false), a connection is closed at once and nothing of it is served; otherwise every
// connection, even one refused for want of a kernel record, gets its conn_open and conn_close.
// Odd server names, through a real listener and a real upstream socket: uppercase and a trailing
// dot decide and are recorded normalised; an IP literal decides as no server_name; a name with a
// byte no host name has, or too long, is refused before any upstream is contacted, with its reason.
import type { Socket, TCPSocketListener } from "bun";
import { afterEach, describe, expect, test } from "bun:test";
import { memoryAudit, type MemoryAudit } from "../audit/sink/memory-audit.ts";
import { parseIp } from "../policy/address.ts";
import { PolicyEngine } from "../policy/engine.ts";
import { loadPolicy } from "../policy/load.ts";
import { createLogger } from "../runtime/log.ts";
import { SpiffeId } from "../spiffe/index.ts";
import type { EgressDeps, EgressListener } from "./egress-listener.ts";
import { startEgressOnFreePort, startWorkload } from "./bounds-test-kit.ts";
import { ascii, ext, GROUP, minimalHello, offeredGroups, serverNameExt, sharedGroups, vec8, vec16 } from "./peek/hello-bytes.ts";

let listener: EgressListener | null = null;
afterEach(() => {
  listener?.stop();
  listener = null;
});


/** Connects, sends a request, and resolves with what came back once the listener closed. */
function exchange(port: number, send: string | Uint8Array = "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"): Promise<string> {
  const { promise, resolve } = Promise.withResolvers<string>();
  let got = "";
  void Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      open: (s) => void s.write(send),
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
    listener = startEgressOnFreePort(d);
    expect(await exchange(listener.port)).toBe("");
    await Bun.sleep(50);
    expect(d.audit.events).toEqual([]);
  });

  test("accepting: a connection without a kernel record is refused, with its conn_open and conn_close", async () => {
    const d = deps(true);
    listener = startEgressOnFreePort(d);
    expect(await exchange(listener.port)).toBe("");
    const deadline = Date.now() + 3000;
    while (d.audit.of("conn_close").length === 0 && Date.now() < deadline) await Bun.sleep(10);
    expect(d.audit.events.map((e) => e.type)).toEqual(["conn_open", "conn_close"]);
    expect(d.audit.of("conn_close")[0]).toMatchObject({ side: "egress", decision: "deny", outcome: "refused", reason: "no_record" });
  });
});

/** An upstream that counts connections, keeps what it got, and ends once a whole TLS record is in. */
function startUpstream() {
  const got: Uint8Array[] = [];
  let opened = 0;
  const server: TCPSocketListener<{ bytes: number[] }> = Bun.listen<{ bytes: number[] }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => {
        opened++;
        s.data = { bytes: [] };
      },
      data: (s: Socket<{ bytes: number[] }>, d) => {
        s.data.bytes.push(...d);
        const b = s.data.bytes;
        if (b.length >= 5 && b.length >= 5 + (((b[3] ?? 0) << 8) | (b[4] ?? 0))) {
          got.push(Uint8Array.from(b));
          s.end();
        }
      },
    },
  });
  return { port: server.port, got, opened: () => opened, stop: () => server.stop(true) };
}

describe("egress listener and odd server names", () => {
  const W = SpiffeId.parse("spiffe://example.org/w");
  let upstream: ReturnType<typeof startUpstream>;
  let audit: MemoryAudit;

  /** A deny rule for blocked.example.com, a host rule for api.example.com, then an address rule for loopback: a name that counts as none takes the last. */
  function startFor(): EgressListener {
    upstream = startUpstream();
    audit = memoryAudit();
    const engine = new PolicyEngine(
      loadPolicy(
        `trust_domain: example.org
egress:
  - { name: blocked, from: spiffe://example.org/w, to: { host: blocked.example.com, port: ${upstream.port} }, action: deny }
  - { name: api, from: spiffe://example.org/w, to: { host: api.example.com, port: ${upstream.port} }, action: passthrough }
  - { name: by-address, from: spiffe://example.org/w, to: { cidr: 127.0.0.1/32, port: ${upstream.port} }, action: passthrough }
`,
        "sni.yaml",
      ),
    );
    const record = { address: parseIp("127.0.0.1"), port: upstream.port, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
    return startEgressOnFreePort({
      lookupRecord: () => record,
      identify: async () => ({ ok: true, id: W, workload: "w" }),
      engine: () => engine,
      names: () => ({ resolve: async (n: string) => (n === "api.example.com" ? [parseIp("127.0.0.1")] : []) }),
      logger: createLogger({ write: () => {} }),
      audit,
    });
  }

  afterEach(() => upstream?.stop());

  async function closed(): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 3000;
    while (audit.of("conn_close").length === 0 && Date.now() < deadline) await Bun.sleep(10);
    const events = audit.of("conn_close");
    expect(events).toHaveLength(1);
    return events[0]!;
  }

  const hello = (name: string | number[] | null) => minimalHello([...(name === null ? [] : serverNameExt(name)), ...ext(16, vec16(vec8(ascii("h2"))))]);

  test("a client that resets after half a request head: recorded as gone, not refused by a rule it never reached", async () => {
    const l = startFor();
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: l.port, socket: { data: () => {} } });
      s.write("GET / HTTP/1.1\r\nHost: api.exa");
      await Bun.sleep(50);
      s.terminate();
      expect(await closed()).toMatchObject({ outcome: "client_gone", detail: "closed after 29 bytes, before they gave a name (SNI or Host)" });
      expect(upstream.opened()).toBe(0);
    } finally {
      l.stop();
    }
  });

  /** What a plain client sending `text` got back before the listener closed. */
  async function answerTo(port: number, text: string | Uint8Array): Promise<string> {
    let got = "";
    const { promise, resolve } = Promise.withResolvers<void>();
    await Bun.connect({ hostname: "127.0.0.1", port, socket: { open: (s) => void s.write(text), data: (_s, d) => void (got += new TextDecoder().decode(d)), close: () => resolve(), error: () => resolve() } });
    await promise;
    return got;
  }

  for (const [what, head, status, reason] of [
    ["a Host a deny rule names: 403 rule", "GET / HTTP/1.1\r\nHost: blocked.example.com\r\n\r\n", "403 Forbidden", "rule"],
    ["a head that breaks HTTP/1.1 (two Hosts): 400 with the peek code", "GET / HTTP/1.1\r\nHost: api.example.com\r\nHost: b\r\n\r\n", "400 Bad Request", "peek_http_smuggling"],
  ] as const) {
    test(`plain HTTP refused before anything was forwarded is answered, not reset: ${what}`, async () => {
      const l = startFor();
      try {
        const body = `tidegate: ${reason}\n`;
        expect(await answerTo(l.port, head)).toBe(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
        expect(await closed()).toMatchObject({ decision: "deny", outcome: "refused", reason });
        expect(upstream.opened()).toBe(0);
      } finally {
        l.stop();
      }
    });
  }

  test("a TLS hello refused the same way gets no HTTP answer, only the close", async () => {
    const l = startFor();
    try {
      expect(await answerTo(l.port, hello("blocked.example.com"))).toBe("");
      expect(await closed()).toMatchObject({ outcome: "refused", reason: "rule" });
    } finally {
      l.stop();
    }
  });

  test("uppercase and a trailing dot: decided and recorded as the lowercase name, bytes passed on unchanged", async () => {
    listener = startFor();
    const bytes = hello("API.Example.COM.");
    await exchange(listener.port, bytes);
    const e = await closed();
    expect(e).toMatchObject({ decision: "allow", rule: "api", outcome: "forwarded", dst: { addr: "127.0.0.1", port: upstream.port, name: "api.example.com" } });
    expect(upstream.got).toEqual([bytes]);
  });

  for (const literal of ["192.0.2.1", "2001:db8::1", "[2001:DB8::1]"]) {
    test(`the IP literal ${literal} decides as no server_name: by the address rule, no name recorded`, async () => {
      listener = startFor();
      await exchange(listener.port, hello(literal));
      const withIp = await closed();
      expect(withIp).toMatchObject({ decision: "allow", rule: "by-address", outcome: "forwarded", dst: { addr: "127.0.0.1", name: null } });
      expect(upstream.opened()).toBe(1);
    });
  }

  test("a hello without server_name decides the same way (the reference for the IP literals)", async () => {
    listener = startFor();
    await exchange(listener.port, hello(null));
    expect(await closed()).toMatchObject({ decision: "allow", rule: "by-address", outcome: "forwarded", dst: { name: null } });
  });

  const refused: [string, number[], RegExp][] = [
    ["a NUL after the allowed name", [...ascii("api.example.com"), 0, ...ascii(".evil.test")], /holds a NUL byte$/],
    ["a control byte", [...ascii("api"), 1, ...ascii(".example.com")], /holds byte 0x01/],
    ["CR LF", ascii("api.example.com\r\nX: y"), /holds byte 0x0d/],
    ["a byte over 0x7f", [...ascii("api"), 0xc3, 0xa9, ...ascii(".example.com")], /holds byte 0xc3/],
    ["a wildcard", ascii("*.example.com"), /holds byte 0x2a/],
    ["a name of 256 bytes", ascii(`${"a".repeat(63)}.`.repeat(4)), /of 256 bytes \(at most 255\)$/],
  ];
  for (const [name, raw, detail] of refused) {
    test(`${name}: refused (peek_tls_bad_sni), recorded, no upstream contacted`, async () => {
      listener = startFor();
      expect(await exchange(listener.port, hello(raw))).toBe("");
      const e = await closed();
      expect(e).toMatchObject({ decision: "deny", outcome: "refused", reason: "peek_tls_bad_sni", dst: { addr: "127.0.0.1", name: null }, bytes_up: 0, bytes_down: 0 });
      expect(e.detail).toMatch(detail);
      expect(e.detail).toMatch(/^[\x20-\x7e]+$/);
      expect(audit.of("conn_open")).toHaveLength(1);
      expect(upstream.opened()).toBe(0);
      expect(upstream.got).toEqual([]);
    });
  }
});

describe("egress listener: a rule's upstream.key_exchange reaches its leg", () => {
  const W = SpiffeId.parse("spiffe://example.org/w");
  let upstream: ReturnType<typeof startUpstream>;
  afterEach(() => upstream?.stop());

  /** The ClientHello the upstream gets for plain HTTP from the workload under a `tls` rule with `upstream` (YAML flow mapping, or none). */
  async function helloUnder(upstreamKey: string): Promise<Uint8Array> {
    upstream = startUpstream();
    const engine = new PolicyEngine(loadPolicy(`trust_domain: example.org\negress:\n  - { name: api, from: spiffe://example.org/w, to: { cidr: 127.0.0.1/32, port: ${upstream.port} }, action: tls${upstreamKey} }\n`, "kx.yaml"));
    const record = { address: parseIp("127.0.0.1"), port: upstream.port, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
    listener = startEgressOnFreePort({ lookupRecord: () => record, identify: async () => ({ ok: true, id: W, workload: "w" }), engine: () => engine, names: () => ({ resolve: async () => [] }), logger: createLogger({ write: () => {} }), audit: memoryAudit() });
    await exchange(listener.port); // the upstream ends the leg once it has the hello
    expect(upstream.got).toHaveLength(1);
    return upstream.got[0]!;
  }

  test("classical: the leg offers X25519, P-256 and P-384 and no hybrid group", async () => {
    const hello = await helloUnder(", upstream: { key_exchange: classical }");
    expect(offeredGroups(hello)).toEqual([GROUP.X25519, GROUP.P256, GROUP.P384]);
    expect(sharedGroups(hello)).toEqual([GROUP.X25519]);
  });

  test("without it: the hybrid X25519MLKEM768 first", async () => {
    const hello = await helloUnder("");
    expect(offeredGroups(hello)[0]).toBe(GROUP.X25519MLKEM768);
    expect(sharedGroups(hello)).toEqual([GROUP.X25519MLKEM768, GROUP.X25519]);
  });
});

describe("egress listener: a connection to the unspecified address (0.0.0.0, ::) is one to this host's loopback", () => {
  const W = SpiffeId.parse("spiffe://example.org/w");

  /** `dialled` as the kernel recorded it, under a policy that denies loopback and passes everything else. */
  async function dial(dialled: string): Promise<{ echoed: string; received: number; close: Record<string, unknown> }> {
    let received = 0;
    const echo = Bun.listen<undefined>({ hostname: dialled.includes(":") ? "::1" : "127.0.0.1", port: 0, socket: { data: (s: Socket<undefined>, d: Uint8Array) => void ((received += d.length), s.write(d)) } });
    const audit = memoryAudit();
    const engine = new PolicyEngine(
      loadPolicy(
        `trust_domain: example.org
egress:
  - { name: no-loopback, from: spiffe://example.org/w, to: { cidr: 127.0.0.0/8, port: any }, action: deny }
  - { name: no-loopback6, from: spiffe://example.org/w, to: { cidr: "::1/128", port: any }, action: deny }
  - { name: internet, from: spiffe://example.org/w, to: { cidr: 0.0.0.0/0, port: any }, action: passthrough }
  - { name: internet6, from: spiffe://example.org/w, to: { cidr: "::/0", port: any }, action: passthrough }
`,
        "zero.yaml",
      ),
    );
    const record = { address: parseIp(dialled), port: echo.port, proto: "tcp" as const, pid: 42, tgid: 42, uid: 1000, gid: 1000, cgroupId: 7n };
    listener = startEgressOnFreePort({ lookupRecord: () => record, identify: async () => ({ ok: true, id: W, workload: "w" }), engine: () => engine, names: () => ({ resolve: async () => [] }), logger: createLogger({ write: () => {} }), audit });
    const w = await startWorkload(listener.port, "hello, host\n");
    const deadline = Date.now() + 3000;
    while (audit.of("conn_close").length === 0 && received === 0 && Date.now() < deadline) await Bun.sleep(10);
    await Bun.sleep(50);
    w.reset();
    echo.stop(true);
    return { echoed: w.text(), received, close: audit.of("conn_close")[0] ?? audit.of("conn_open")[0]! };
  }

  for (const dialled of ["0.0.0.0", "::", "::ffff:0.0.0.0"]) {
    test(`${dialled}: decided as loopback (refused by the loopback deny), nothing reaches the host's listener`, async () => {
      const { echoed, received, close } = await dial(dialled);
      expect(close).toMatchObject({ outcome: "refused", reason: "rule", rule: dialled === "::" ? "no-loopback6" : "no-loopback" });
      expect(echoed).toBe("");
      expect(received).toBe(0);
    });
  }
});
