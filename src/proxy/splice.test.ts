// splice on real loopback sockets: 16 MiB each way through a relay arrive whole and in order with a
// reader that pauses (backpressure, not buffering), a half-close passes on while the other way
// keeps flowing, and byte counts are exact.
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { endOf, splice, type Splice } from "./splice.ts";

const MiB = 1024 * 1024;

/** A relay on 127.0.0.1 that splices every accepted socket to `target`. */
function relay(targetPort: number, finished: (s: Splice) => void) {
  return Bun.listen<{ sp?: Splice; early: Uint8Array[]; up?: Socket<unknown> }>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      open(client) {
        client.data = { early: [] };
        client.pause();
        void Bun.connect<{ client: typeof client }>({
          hostname: "127.0.0.1",
          port: targetPort,
          allowHalfOpen: true,
          data: { client },
          socket: {
            open(up) {
              const sp = splice(endOf(client as Socket<unknown>), endOf(up as Socket<unknown>), () => finished(sp));
              client.data.sp = sp;
              client.data.up = up as Socket<unknown>;
              client.resume();
            },
            data: (_up, chunk) => client.data.sp!.down.data(chunk),
            drain: () => client.data.sp?.up.drain(),
            end: () => client.data.sp?.down.ended(),
            close: () => client.data.sp?.upstreamClosed(),
          },
        });
      },
      data: (client, chunk) => client.data.sp!.up.data(chunk),
      drain: (client) => client.data.sp?.down.drain(),
      end: (client) => client.data.sp?.up.ended(),
      close: (client) => client.data.sp?.clientClosed(),
    },
  });
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255;
  return b;
}

/**
 * Socket handlers of one end of the big transfer: sends `out` (then FIN) as fast as the socket
 * takes it, and reads slowly, pausing for 20 ms every 4 MiB, into `got`.
 */
function bulkEnd(out: Uint8Array, got: Uint8Array[]) {
  let received = 0;
  const pumps = new WeakMap<object, () => void>();
  return {
    open(s: Socket<undefined>) {
      let off = 0;
      const pump = () => {
        while (off < out.length) {
          const n = s.write(out.subarray(off, off + 256 * 1024));
          off += n;
          if (n === 0) return;
        }
        s.shutdown();
      };
      pumps.set(s, pump);
      pump();
    },
    drain(s: Socket<undefined>) {
      pumps.get(s)?.();
    },
    data(s: Socket<undefined>, chunk: Uint8Array) {
      got.push(chunk);
      received += chunk.length;
      if (received % (4 * MiB) < chunk.length) {
        s.pause();
        setTimeout(() => s.resume(), 20);
      }
    },
  };
}

describe("splice", () => {
  test("16 MiB each way arrive whole through the relay, with a slow reader on each end", async () => {
    const toServer = pattern(16 * MiB, 7);
    const toClient = pattern(16 * MiB, 11);
    const got = { server: [] as Uint8Array[], client: [] as Uint8Array[] };
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: bulkEnd(toClient, got.server) });
    let finished: Splice | null = null;
    const r = relay(server.port, (s) => (finished = s));
    const done = Promise.withResolvers<void>();
    await Bun.connect({
      hostname: "127.0.0.1",
      port: r.port,
      socket: {
        ...bulkEnd(toServer, got.client),
        end() {
          done.resolve();
        },
        close() {
          done.resolve();
        },
      },
    });
    await done.promise;
    await Bun.sleep(50);
    const join = (parts: Uint8Array[]) => Buffer.concat(parts);
    const total = (parts: Uint8Array[]) => parts.reduce((n, p) => n + p.length, 0);
    expect(total(got.client)).toBe(toClient.length);
    expect(total(got.server)).toBe(toServer.length);
    expect(join(got.client).equals(Buffer.from(toClient))).toBe(true);
    expect(join(got.server).equals(Buffer.from(toServer))).toBe(true);
    expect(finished).not.toBeNull();
    expect([finished!.bytesUp(), finished!.bytesDown()]).toEqual([toServer.length, toClient.length]);
    r.stop(true);
    server.stop(true);
  }, 30_000);

  test("a half-close passes on: the client's FIN reaches the server, whose answer still comes back", async () => {
    const server = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          (s as unknown as { buf: string }).buf = "";
        },
        data(s, chunk) {
          (s as unknown as { buf: string }).buf += chunk.toString();
        },
        end(s) {
          // only after the client's FIN: answer with what was received, then close
          s.write(`got:${(s as unknown as { buf: string }).buf}`);
          s.end();
        },
      },
    });
    const r = relay(server.port, () => {});
    const answer = Promise.withResolvers<string>();
    let text = "";
    await Bun.connect({
      hostname: "127.0.0.1",
      port: r.port,
      socket: {
        open(s) {
          s.write("hello");
          s.shutdown();
        },
        data(_s, chunk) {
          text += chunk.toString();
        },
        close() {
          answer.resolve(text);
        },
        end() {
          answer.resolve(text);
        },
      },
    });
    expect(await answer.promise).toBe("got:hello");
    r.stop(true);
    server.stop(true);
  }, 10_000);
});
