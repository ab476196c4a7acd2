// splice on real loopback sockets: 16 MiB each way through a relay arrive whole and in order with a
// reader that pauses (backpressure, not buffering), a half-close passes on while the other way
// keeps flowing, and byte counts are exact.
import { describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { waitFor } from "../../test/helpers/processes.ts";
import { endOf, splice, type Splice, type SpliceEnd } from "./splice.ts";

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
    const join = (parts: Uint8Array[]) => Buffer.concat(parts);
    const total = (parts: Uint8Array[]) => parts.reduce((n, p) => n + p.length, 0);
    // The client hears the server's FIN once the server's 16 MiB are through; its own upload
    // (paused by the slow reader) and the splice's end can still be on their way.
    await waitFor("the upload whole at the server and the splice finished", () => (finished !== null && total(got.server) >= toServer.length ? true : undefined), 20_000, 5);
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

/** An end that records what is called on it, holding `payload` (the connection state an end keeps alive). */
function recordingEnd(calls: string[], payload: object): SpliceEnd & { payload: object } {
  return {
    payload,
    write: (d) => (calls.push(`write ${d.length}`), d.length),
    pause: () => void calls.push("pause"),
    resume: () => void calls.push("resume"),
    shutdown: () => void calls.push("shutdown"),
    end: () => void calls.push("end"),
    terminate: () => void calls.push("terminate"),
  };
}

/** A splice over two recording ends, each holding a fresh object, and WeakRefs to those objects. */
function tracedSplice(calls: string[], finished: string[]): { sp: Splice; refs: WeakRef<object>[] } {
  const held = [{ state: "client" }, { state: "upstream" }, { state: "onFinished" }];
  const onFinishedHolds = held[2]!;
  const sp = splice(recordingEnd(calls, held[0]!), recordingEnd(calls, held[1]!), () => void finished.push(String(onFinishedHolds.state)), { sent() {}, received() {} });
  return { sp, refs: held.map((o) => new WeakRef(o)) };
}

describe("an ended splice", () => {
  // Without this, a socket that keeps its splice as `data` until the collector takes it keeps the
  // whole connection alive with it, into the old generation.
  for (const how of ["both ends ended", "aborted"] as const) {
    test(`lets go of its ends and onFinished once ${how}, and calls nothing on them after`, async () => {
      const calls: string[] = [];
      const finished: string[] = [];
      const { sp, refs } = tracedSplice(calls, finished);
      sp.up.data(new Uint8Array(3));
      sp.down.data(new Uint8Array(5));
      if (how === "aborted") sp.abort();
      else {
        sp.up.ended();
        sp.down.ended();
      }
      expect(finished).toEqual(["onFinished"]);
      expect(calls).toEqual(how === "aborted" ? ["write 3", "write 5", "terminate", "terminate"] : ["write 3", "write 5", "shutdown", "shutdown", "end", "end"]);
      // what an ended splice is still asked: nothing reaches the ends, the counts stay
      calls.length = 0;
      sp.up.data(new Uint8Array(7));
      sp.down.drain();
      sp.clientClosed();
      sp.upstreamClosed();
      sp.abort();
      expect(calls).toEqual([]);
      expect(finished).toEqual(["onFinished"]);
      expect([sp.bytesUp(), sp.bytesDown()]).toEqual([3, 5]);
      // the splice is still held here; what it held is not
      await Bun.sleep(0);
      Bun.gc(true);
      await Bun.sleep(0);
      Bun.gc(true);
      expect(refs.map((r) => r.deref() === undefined)).toEqual([true, true, true]);
      expect(sp.bytesUp()).toBe(3);
    });
  }

  test("while it runs, it keeps its ends (the check above can tell)", async () => {
    const { sp, refs } = tracedSplice([], []);
    await Bun.sleep(0);
    Bun.gc(true);
    await Bun.sleep(0);
    Bun.gc(true);
    expect(refs.map((r) => r.deref() !== undefined)).toEqual([true, true, true]);
    sp.abort();
  });
});

describe("short writes", () => {
  test("what the destination did not take goes out from where it stopped, in order, with data that came meanwhile", () => {
    const got: number[] = [];
    const offsets: number[] = [];
    let room = 3;
    const dst: SpliceEnd = {
      write: (d, offset = 0) => {
        offsets.push(offset);
        const n = Math.min(room, d.length - offset);
        for (let i = 0; i < n; i++) got.push(d[offset + i]!);
        room -= n;
        return n;
      },
      pause() {},
      resume() {},
      shutdown() {},
      end() {},
      terminate() {},
    };
    const calls: string[] = [];
    const sp = splice(recordingEnd(calls, {}), dst, () => {}, null);
    sp.up.data(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    expect(got).toEqual([1, 2, 3]);
    expect(calls).toContain("pause");
    room = 2;
    sp.up.drain(); // the upstream can take more: the direction toward it goes on
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect(offsets).toEqual([0, 3]);
    sp.up.data(Uint8Array.of(9, 10)); // in flight while paused: joined after the rest
    room = 100;
    sp.up.drain();
    expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(sp.bytesUp()).toBe(10);
  });
});
