// CorkedClient (cork.ts) over a recording stand-in for the workload's side.
import { describe, expect, test } from "bun:test";
import { CorkedClient } from "./cork.ts";
import type { ClientSide } from "./exchange.ts";

function recorder(accept = true) {
  const calls: string[] = [];
  /** The bytes each write was given, as given. */
  const views: Uint8Array[] = [];
  const inner: ClientSide = {
    write(b) {
      calls.push(`write:${new TextDecoder().decode(b)}`);
      views.push(b);
      return accept;
    },
    end: () => void calls.push("end"),
    abort: () => void calls.push("abort"),
    pause: () => void calls.push("pause"),
    resume: () => void calls.push("resume"),
  };
  return { calls, views, inner };
}
const bytes = (s: string) => new TextEncoder().encode(s);

describe("CorkedClient", () => {
  test("uncorked, each write goes straight through with its own result", () => {
    const { calls, inner } = recorder(false);
    const c = new CorkedClient(inner);
    expect(c.write(bytes("a"))).toBe(false);
    expect(c.write(bytes("b"))).toBe(false);
    expect(calls).toEqual(["write:a", "write:b"]);
  });

  test("corked, the writes go out as one, in order, at uncork", () => {
    const { calls, inner } = recorder();
    const c = new CorkedClient(inner);
    c.cork();
    expect(c.write(bytes("HTTP/1.1 200 OK\r\n\r\n"))).toBe(true);
    expect(c.write(bytes("body"))).toBe(true);
    expect(calls).toEqual([]);
    expect(c.uncork()).toBe(true);
    expect(calls).toEqual(["write:HTTP/1.1 200 OK\r\n\r\nbody"]);
    c.write(bytes("next"));
    expect(calls).toEqual(["write:HTTP/1.1 200 OK\r\n\r\nbody", "write:next"]);
  });

  test("uncork reports backpressure from the one write it makes", () => {
    const { calls, inner } = recorder(false);
    const c = new CorkedClient(inner);
    c.cork();
    c.write(bytes("x"));
    expect(c.uncork()).toBe(false);
    expect(calls).toEqual(["write:x"]);
  });

  test("uncork with nothing queued writes nothing", () => {
    const { calls, inner } = recorder(false);
    const c = new CorkedClient(inner);
    expect(c.uncork()).toBe(true);
    c.cork();
    expect(c.uncork()).toBe(true);
    expect(calls).toEqual([]);
  });

  test("end writes what is queued first, then ends", () => {
    const { calls, inner } = recorder();
    const c = new CorkedClient(inner);
    c.cork();
    c.write(bytes("last"));
    c.end();
    expect(calls).toEqual(["write:last", "end"]);
    expect(c.uncork()).toBe(true); // nothing left
    expect(calls).toEqual(["write:last", "end"]);
  });

  test("abort drops what is queued", () => {
    const { calls, inner } = recorder();
    const c = new CorkedClient(inner);
    c.cork();
    c.write(bytes("never"));
    c.abort();
    c.uncork();
    expect(calls).toEqual(["abort"]);
  });

  test("a second cork keeps what the first queued", () => {
    const { calls, inner } = recorder();
    const c = new CorkedClient(inner);
    c.cork();
    c.write(bytes("1"));
    c.cork();
    c.write(bytes("2"));
    c.uncork();
    expect(calls).toEqual(["write:12"]);
  });

  test("reusable: one buffer joins each uncork's writes, in order; the inner side sees each join whole", () => {
    const { calls, views, inner } = recorder();
    const c = new CorkedClient(inner, true);
    for (const [a, b] of [["head-1|", "body-1"], ["head-2|", "body-two"]]) {
      c.cork();
      c.write(bytes(a!));
      c.write(bytes(b!));
      c.uncork();
    }
    expect(calls).toEqual(["write:head-1|body-1", "write:head-2|body-two"]);
    expect(views[0]!.buffer).toBe(views[1]!.buffer); // the same buffer, reused
  });

  test("not reusable (a TLS stream may keep what it is given): each join is a buffer of its own", () => {
    const { calls, views, inner } = recorder();
    const c = new CorkedClient(inner);
    for (const x of ["a", "b"]) {
      c.cork();
      c.write(bytes(x));
      c.write(bytes(x));
      c.uncork();
    }
    expect(calls).toEqual(["write:aa", "write:bb"]);
    expect(views[0]!.buffer).not.toBe(views[1]!.buffer);
  });

  test("pause and resume pass through, corked or not", () => {
    const { calls, inner } = recorder();
    const c = new CorkedClient(inner);
    c.pause();
    c.cork();
    c.resume();
    expect(calls).toEqual(["pause", "resume"]);
  });
});
