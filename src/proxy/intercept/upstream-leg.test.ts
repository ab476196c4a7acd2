// An upstream leg the upstream ended first is still closed by us when it is let go (the pool drops
// it, an exchange ends it). The leg only noted the upstream's end and then skipped its own: with
// half-open sockets that left the connection open for good (ESTABLISHED while the upstream's TLS
// side waits, CLOSE-WAIT once it closes), a descriptor lost per leg and a handle that could keep a
// stopped agent's process alive.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InterceptionCa } from "../../intercept/ca.ts";
import { parseIp } from "../../policy/address.ts";
import { PeerVerifier } from "../peer-verifier.ts";
import { SessionCache } from "../session-cache.ts";
import { openUpstream, type UpData } from "../upstream.ts";
import { LegPool } from "./leg-pool.ts";
import { UpstreamLeg } from "./upstream-leg.ts";

let dir = "";
let ca: InterceptionCa;
let cert = { certPem: "", keyPem: "" };
const servers: { stop(force?: boolean): void }[] = [];
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-leg-"));
  ca = await InterceptionCa.open({ stateDir: dir, label: "leg-test" });
  cert = await ca.leafFor("127.0.0.1");
});
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A TLS server that answers one request, then ends its side (the upstream's keep-alive timeout, say). */
function endingServer(): number {
  const l = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: cert.certPem, key: cert.keyPem },
    socket: {
      data(s) {
        s.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        s.end();
      },
    },
  });
  servers.push(l);
  return l.port;
}

/** The kernel's state of our TCP socket on local port `port` (/proc/net/tcp, "01" ESTABLISHED, "08" CLOSE-WAIT); null once it is gone. */
function stateOf(port: number): string | null {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === `0100007F:${hex}`) return f[3] ?? null;
  }
  return null;
}
const open = (port: number | null) => port !== null && (stateOf(port) === "01" || stateOf(port) === "08");

async function legTo(port: number): Promise<UpstreamLeg> {
  const up = await openUpstream({ address: parseIp("127.0.0.1"), port, tls: { kind: "tls", serverName: null, ca: { pem: ca.certPem, id: "test" } } }, { sessions: new SessionCache(), verifier: new PeerVerifier(), timeoutMs: 3000 });
  if (!up.ok) throw new Error(up.detail);
  return new UpstreamLeg("k", up.socket as Socket<UpData>, null, "c1");
}

const until = async (what: string, ok: () => boolean) => {
  const deadline = Date.now() + 3000;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within 3 s`);
    await Bun.sleep(10);
  }
};

const REQUEST = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n");

describe("an upstream leg the upstream ended", () => {
  test("end() after the upstream's end still closes our side", async () => {
    const leg = await legTo(endingServer());
    const port = leg.socket.localPort;
    let ended = false;
    leg.owner = { legData() {}, legEnded: () => void (ended = true), legDrain() {} };
    leg.start();
    leg.send(REQUEST);
    await until("the leg hearing the upstream's end", () => ended);
    expect(leg.closed).toBe(true);
    expect(open(port)).toBe(true); // half-open: the upstream's side is done, ours is not
    leg.end();
    await until("our side closing", () => !open(port));
  });

  test("a leg in the pool that the upstream ends is closed on our side too", async () => {
    const leg = await legTo(endingServer());
    const port = leg.socket.localPort;
    let got = 0;
    leg.owner = { legData: () => void got++, legEnded() {}, legDrain() {} };
    leg.start();
    leg.send(REQUEST);
    await until("the answer", () => got > 0);
    leg.reusable = true; // as the exchange marks a kept-alive leg, before the upstream's end comes
    const pool = new LegPool({ idleMs: 60_000 });
    pool.give(leg);
    await until("the pool dropping it", () => pool.idle === 0);
    await until("our side closing", () => !open(port));
  });
});
