/**
 * The workload's end of an intercepted connection, as the exchange writes to it (exchange.ts
 * ClientSide): the accepted Bun socket itself for plain HTTP, or a TLS server session terminated
 * over it with the interception CA's leaf for the name the ClientHello gave.
 *
 * Termination runs node:tls over a Duplex fed from the Bun socket (Bun's native sockets cannot
 * start a server-side TLS session on an accepted socket, and the ClientHello was already read to
 * peek at it): the peeked bytes go in first. ALPN offers http/1.1 only, TLS 1.2 and up. What the
 * splice's handlers of the listener call (data, end, close, drain) is routed in by `feed`.
 */
import tls from "node:tls";
import { Duplex } from "node:stream";
import type { Socket } from "bun";
import type { ClientSide } from "./exchange.ts";
import { copyOf } from "../../http1/bytes.ts";

export interface Feed {
  data(chunk: Uint8Array): void;
  ended(): void;
  closed(): void;
  drain(): void;
}

export interface Receiver {
  data(chunk: Uint8Array): void;
  end(): void;
  closed(): void;
  drain(): void;
}

/** Plain HTTP: the Bun socket, with a queue for what it could not take at once. */
export function plainClient(socket: Socket<unknown>, r: Receiver): { side: ClientSide; feed: Feed } {
  const queue: Uint8Array[] = [];
  let ending = false;
  const side: ClientSide = {
    copies: true,
    write(bytes) {
      // copies by copyOf, not slice: `bytes` may be a read Bun handed over (src/http1/bytes.ts)
      if (queue.length > 0) {
        queue.push(copyOf(bytes));
        return false;
      }
      const n = Math.max(0, socket.write(bytes));
      if (n < bytes.length) queue.push(copyOf(bytes, n));
      return n === bytes.length;
    },
    end() {
      ending = true;
      if (queue.length === 0) socket.end();
    },
    abort() {
      queue.length = 0;
      socket.terminate();
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
  const feed: Feed = {
    data: (c) => r.data(c),
    ended: () => r.end(),
    closed: () => r.closed(),
    drain() {
      while (queue.length > 0) {
        const b = queue[0]!;
        const n = Math.max(0, socket.write(b));
        if (n < b.length) {
          queue[0] = b.subarray(n);
          return;
        }
        queue.shift();
      }
      if (ending) socket.end();
      else r.drain();
    },
  };
  return { side, feed };
}

export interface Leaf {
  readonly certPem: string;
  readonly keyPem: string;
}

const contexts = new WeakMap<Leaf, tls.SecureContext>();

function contextOf(leaf: Leaf): tls.SecureContext {
  let c = contexts.get(leaf);
  if (c === undefined) {
    c = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem, minVersion: "TLSv1.2" });
    contexts.set(leaf, c);
  }
  return c;
}

/** Terminates the workload's TLS with `leaf`; `early` is the ClientHello (and anything after it) already read. */
export function tlsClient(socket: Socket<unknown>, early: Uint8Array, leaf: Leaf, r: Receiver): { side: ClientSide; feed: Feed } {
  let pendingWrite: (() => void) | null = null;
  const wire = new Duplex({
    read() {},
    write(chunk: Uint8Array, _enc, cb) {
      // what the socket did not take goes on from where it stopped, at each drain (an offset, not a view: src/http1/bytes.ts copyOf)
      let at = Math.max(0, socket.write(chunk));
      if (at === chunk.length) return cb();
      pendingWrite = () => {
        at += Math.max(0, socket.write(chunk, at, chunk.length - at));
        if (at === chunk.length) {
          pendingWrite = null;
          cb();
        }
      };
    },
    final(cb) {
      socket.end();
      cb();
    },
  });
  const t = new tls.TLSSocket(wire as unknown as import("node:net").Socket, { isServer: true, secureContext: contextOf(leaf), ALPNProtocols: ["http/1.1"] });
  let gone = false;
  const closed = () => {
    if (gone) return;
    gone = true;
    r.closed();
  };
  // the read itself: its bytes are copied where they are kept (copyOf), and `.buffer` on it would cost each young collection (src/http1/bytes.ts)
  t.on("data", (chunk: Buffer) => r.data(chunk));
  t.on("end", () => r.end());
  t.on("drain", () => r.drain());
  t.on("error", closed);
  t.on("close", closed);
  if (early.length > 0) wire.push(Buffer.from(early));
  const side: ClientSide = {
    write: (bytes) => t.write(bytes),
    end: () => void t.end(),
    abort: () => {
      t.destroy();
      socket.terminate();
    },
    pause: () => {
      t.pause();
      socket.pause();
    },
    resume: () => {
      t.resume();
      socket.resume();
    },
  };
  const feed: Feed = {
    data: (c) => void wire.push(Buffer.from(c)),
    ended: () => void wire.push(null),
    closed: () => {
      wire.push(null);
      t.destroy();
      closed();
    },
    drain: () => pendingWrite?.(),
  };
  return { side, feed };
}
