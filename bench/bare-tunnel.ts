/**
 * The yardstick of bench/mtls.ts: one hop of a bare two-hop mutual-TLS tunnel on Bun's native
 * sockets (PLATFORM-NOTES, "A Bun data path, measured"), with no policy, identity or audit. One
 * process is one hop:
 *
 * - `--mode client`: plain TCP in on --listen, mutual TLS out to --connect, presenting --cert/--key,
 *   the server verified against --ca and --server-name; the session of the latest full handshake
 *   upstream is offered on every new connection through `setSession()` in `open` (a TLS 1.3
 *   ticket arrives after the handshake, so it is taken on the first bytes from upstream; taken in
 *   `handshake` it does not resume);
 * - `--mode server`: mutual TLS in on --listen, a client certificate required and verified
 *   against --ca (`authorized` checked in `handshake`: Bun reaches it for an untrusted client
 *   too), plain TCP out to --connect.
 *
 * Bytes both ways with backpressure: on a short write the source is paused, the rest kept and
 * written on the destination's `drain`, then the source resumes. Half-open connections pass:
 * a FIN is passed on once what came before it is written; both sockets close when both
 * directions have ended, or when either closes (after what it sent is passed on).
 *
 *   bun bench/bare-tunnel.ts --mode client --listen 127.0.0.1:15001 --connect 127.0.0.1:15002 \
 *     --cert agent.crt --key agent.key --ca ca.crt [--server-name server.example.org]
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import type { Socket, SocketHandler } from "bun";

const { values: o } = parseArgs({
  args: process.argv.slice(2),
  options: {
    mode: { type: "string" },
    listen: { type: "string" },
    connect: { type: "string" },
    cert: { type: "string" },
    key: { type: "string" },
    ca: { type: "string" },
    "server-name": { type: "string", default: "server.example.org" },
  },
});
function hostPort(flag: string, v: string | undefined): { hostname: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(v ?? "");
  if (m === null) throw new Error(`bare-tunnel: --${flag} must be HOST:PORT, got ${JSON.stringify(v)}`);
  return { hostname: m[1]!.replace(/^\[(.*)\]$/, "$1"), port: Number(m[2]) };
}
if (o.mode !== "client" && o.mode !== "server") throw new Error(`bare-tunnel: --mode must be client or server, got ${JSON.stringify(o.mode)}`);
if (o.cert === undefined || o.key === undefined || o.ca === undefined) throw new Error("bare-tunnel: --cert, --key and --ca are required");
const listen = hostPort("listen", o.listen);
const upstream = hostPort("connect", o.connect);
const tls = { cert: readFileSync(o.cert, "utf8"), key: readFileSync(o.key, "utf8"), ca: readFileSync(o.ca, "utf8") };

/** One socket of a tunnelled pair. */
interface End {
  other: Socket<End> | null;
  /** Writable: connected, and for TLS, the handshake verified. */
  ready: boolean;
  /** Bytes from this socket not yet written to `other`. */
  pending: Uint8Array | null;
  /** This socket sent FIN or closed; `finSent`: passed on to `other`; `closed`: it can take nothing more. */
  ended: boolean;
  finSent: boolean;
  closed: boolean;
  /** Client mode, upstream leg: its session was taken for the next connection. */
  sessionTaken: boolean;
}
const fresh = (other: Socket<End> | null): End => ({ other, ready: false, pending: null, ended: false, finSent: false, closed: false, sessionTaken: false });

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const c = new Uint8Array(a.length + b.length);
  c.set(a);
  c.set(b, a.length);
  return c;
}

/**
 * Writes what `src` has pending to its other end; then, if `src` ended, passes the FIN on, and
 * closes both once both directions are done (or `src` closed: nothing can flow back); else
 * resumes reading. Bytes for an end that closed are dropped and `src` is closed.
 */
function flush(src: Socket<End>): void {
  const s = src.data;
  const dst = s.other;
  if (dst === null || !dst.data.ready) return;
  if (dst.data.closed) {
    s.pending = null;
    if (!s.closed) src.end();
    return;
  }
  if (s.pending !== null) {
    const n = Math.max(0, dst.write(s.pending));
    if (n < s.pending.length) {
      s.pending = s.pending.subarray(n);
      return;
    }
    s.pending = null;
  }
  if (!s.ended) return void src.resume();
  if (!s.finSent) {
    s.finSent = true;
    dst.shutdown();
  }
  if (s.closed || dst.data.finSent) {
    src.end();
    dst.end();
  }
}

function forward(src: Socket<End>, chunk: Uint8Array): void {
  const s = src.data;
  if (s.pending !== null) {
    s.pending = concat(s.pending, chunk); // in flight when the source was paused
    return;
  }
  const dst = s.other;
  if (dst === null || !dst.data.ready) {
    s.pending = new Uint8Array(chunk);
    src.pause();
    return;
  }
  if (dst.data.closed) return void src.end();
  const n = Math.max(0, dst.write(chunk));
  if (n < chunk.length) {
    s.pending = chunk.subarray(n);
    src.pause();
  }
}

/** Handlers shared by both sockets of a pair. */
const common: Pick<SocketHandler<End>, "data" | "drain" | "end" | "close" | "error" | "timeout"> = {
  data: forward,
  drain(sock) {
    const o = sock.data.other;
    if (o !== null) flush(o);
  },
  end(sock) {
    sock.data.ended = true;
    flush(sock);
  },
  close(sock) {
    sock.data.closed = true;
    sock.data.ended = true;
    flush(sock);
  },
  error() {},
  timeout(sock) {
    sock.end();
  },
};

/** The session of the latest full handshake upstream, taken on its first bytes: offered on the next connection. */
let session: Uint8Array | null = null;

/** Opens the outbound leg for the accepted socket `inSock`. */
function dial(inSock: Socket<End>): void {
  const ready = (up: Socket<End>) => {
    up.data.ready = true;
    inSock.data.other = up;
    flush(inSock);
  };
  const client = o.mode === "client";
  Bun.connect<End>({
    ...upstream,
    allowHalfOpen: true,
    data: fresh(inSock),
    ...(client ? { tls: { ...tls, serverName: o["server-name"], rejectUnauthorized: true } } : {}),
    socket: {
      ...common,
      open(up) {
        if (!client) return ready(up);
        if (session !== null) up.setSession(session);
      },
      handshake(up, authorized) {
        if (!authorized) {
          up.terminate();
          inSock.end();
          return;
        }
        ready(up);
      },
      data(up, chunk) {
        if (client && !up.data.sessionTaken) {
          up.data.sessionTaken = true;
          if (session === null || !up.isSessionReused()) session = up.getSession() as unknown as Uint8Array;
        }
        forward(up, chunk);
      },
      connectError() {
        inSock.end();
      },
    },
  }).catch(() => inSock.end());
}

Bun.listen<End>({
  ...listen,
  allowHalfOpen: true,
  ...(o.mode === "server" ? { tls: { ...tls, requestCert: true, rejectUnauthorized: true } } : {}),
  socket: {
    ...common,
    open(sock) {
      sock.data = fresh(null);
      sock.data.ready = o.mode === "client";
      if (o.mode === "client") dial(sock);
    },
    handshake(sock, authorized) {
      if (!authorized) return void sock.terminate();
      sock.data.ready = true;
      dial(sock);
    },
  },
});
console.error(`bare-tunnel: ${o.mode} ${listen.hostname}:${listen.port} -> ${upstream.hostname}:${upstream.port}`);
