/**
 * For the tests of the proxies' bounds and of a stopping agent's drain: a workload's connection
 * that says how it ended, a TCP listener that never completes a connect, and a deadline-bound poll.
 */
import type { Socket, SocketHandler } from "bun";
import { waitFor } from "../../test/helpers/processes.ts";
import { startEgressListener, type EgressDeps, type EgressListener } from "./egress-listener.ts";

export interface WorkloadConn {
  write(text: string): void;
  end(): void;
  /** Closes at once, with a reset: the workload's connection is lost. */
  reset(): void;
  /** What came back, and the error it ended with (`ECONNRESET` for a reset), null for a clean end. */
  readonly done: Promise<{ text: string; error: string | null }>;
  /** What came back so far. */
  text(): string;
}

/** Connects to 127.0.0.1:`port` and writes `first`. */
export async function startWorkload(port: number, first: string): Promise<WorkloadConn> {
  let text = "";
  const { promise, resolve } = Promise.withResolvers<{ text: string; error: string | null }>();
  const finish = (error: Error | null | undefined) => resolve({ text, error: error == null ? null : ((error as { code?: string }).code ?? error.message) });
  const s: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_s, d) => void (text += new TextDecoder().decode(d)),
      close: (_s, e) => finish(e),
      error: (_s, e) => finish(e),
      connectError: (_s, e) => finish(e),
    },
  });
  s.write(first);
  return { write: (t) => void s.write(t), end: () => void s.end(), reset: () => void s.terminate(), done: promise, text: () => text };
}

/** Python lines: a listener `s` on 127.0.0.1 with backlog 0, its queue filled by two connects held in `held`; prints its port. */
const FILL_BACKLOG = [
  "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
  "port = s.getsockname()[1]",
  "held = []",
  "for i in range(2):",
  "    c = socket.socket(); c.setblocking(False)",
  "    try: c.connect(('127.0.0.1', port))",
  "    except BlockingIOError: pass",
  "    held.append(c)",
  "print(port, flush=True)",
];

/**
 * A TCP listener on 127.0.0.1 whose accept queue is full (backlog 0, one connection queued and
 * never accepted): the kernel drops every further SYN, so a connect to it never completes. It is
 * a python3 process (Bun's listeners take no backlog); `stop` ends it.
 */
export async function fullBacklog(): Promise<{ port: number; stop(): void }> {
  const script = [
    "import socket, sys",
    ...FILL_BACKLOG,
    "sys.stdin.read()",
  ].join("\n");
  const p = Bun.spawn(["python3", "-c", script], { stdin: "pipe", stdout: "pipe", stderr: "ignore" });
  const { value } = await p.stdout.getReader().read();
  const port = Number(new TextDecoder().decode(value).trim());
  if (!(port > 0)) {
    p.kill();
    throw new Error("bounds-test-kit: python3 did not report its listener's port");
  }
  return { port, stop: () => p.kill() };
}

/**
 * Like fullBacklog, but `release` makes room in the accept queue: a connect waiting on it then
 * completes (at the kernel's next SYN retry, about a second later), and the listener accepts and
 * reads for `forMs`; it resolves with what each connection it accepted received (latin1).
 */
export async function releasableBacklog(): Promise<{ port: number; release(forMs: number): Promise<string[]>; stop(): void }> {
  const script = [
    "import json, socket, sys, time",
    ...FILL_BACKLOG,
    "until = time.time() + float(sys.stdin.readline()) / 1000",
    "s.setblocking(False)",
    "mine = set(c.getsockname()[1] for c in held)",
    "conns, got = [], []",
    "while time.time() < until:",
    "    try:",
    "        c, peer = s.accept(); c.setblocking(False)",
    "        if peer[1] in mine: continue",
    "        conns.append(c); got.append(b'')",
    "    except BlockingIOError: pass",
    "    for i, c in enumerate(conns):",
    "        try: got[i] += c.recv(65536)",
    "        except (BlockingIOError, ConnectionResetError): pass",
    "    time.sleep(0.01)",
    "print(json.dumps([g.decode('latin1') for g in got]), flush=True)",
  ].join("\n");
  const p = Bun.spawn(["python3", "-c", script], { stdin: "pipe", stdout: "pipe", stderr: "ignore" });
  const reader = p.stdout.getReader();
  let out = "";
  /** The next line python3 prints (a read may end mid-line). */
  const line = async (): Promise<string> => {
    while (!out.includes("\n")) {
      const r = await reader.read();
      if (r.done) throw new Error("bounds-test-kit: python3 ended early");
      out += new TextDecoder().decode(r.value);
    }
    const at = out.indexOf("\n");
    const text = out.slice(0, at);
    out = out.slice(at + 1);
    return text;
  };
  const port = Number(await line());
  if (!(port > 0)) {
    p.kill();
    throw new Error("bounds-test-kit: python3 did not report its listener's port");
  }
  return {
    port,
    async release(forMs) {
      p.stdin.write(`${forMs}\n`);
      p.stdin.flush();
      return JSON.parse(await line()) as string[];
    },
    stop: () => p.kill(),
  };
}

/**
 * Handlers of a server that answers each connection's first bytes with `n` lines (`tick 0\n`, ...),
 * one every `everyMs`, then ends it (sooner when a write fails: the connection went). `seen`
 * counts the connections that closed, and those that were reset (closed with an error).
 */
export function ticker(n: number, everyMs = 100): { handler: SocketHandler<unknown>; seen: { closed: number; cut: number } } {
  const seen = { closed: 0, cut: 0 };
  const handler: SocketHandler<unknown> = {
    data(s: Socket<unknown>) {
      let i = 0;
      const t = setInterval(() => {
        if (s.write(`tick ${i}\n`) < 0 || ++i === n) {
          clearInterval(t);
          s.end();
        }
      }, everyMs);
    },
    close: (_s: Socket<unknown>, e?: Error) => {
      seen.closed++;
      if (e !== undefined) seen.cut++;
    },
  };
  return { handler, seen };
}

/** test/helpers/processes.ts `waitFor`, polling every 10 ms, for 5 s unless told. */
export function waitUntil<T>(what: string, probe: () => T | undefined, ms = 5000): Promise<T> {
  return waitFor(what, probe, ms, 10);
}

/** The egress listener with `deps`, on a free port above 20000 (a taken one: another, 20 tries). */
export function startEgressOnFreePort(deps: EgressDeps): EgressListener {
  for (let i = 0; i < 20; i++) {
    try {
      return startEgressListener(20_000 + Math.floor(Math.random() * 40_000), deps);
    } catch {
      // taken: another port
    }
  }
  throw new Error("bounds-test-kit: no free port for the egress listener in 20 tries");
}

/** A TCP server on 127.0.0.1 that answers the first bytes of each connection with `partial`, then resets it (or, `fin`, ends it in order). */
export function cuttingServer(partial: string, fin: boolean): { port: number; stop(force?: boolean): void } {
  return Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data: (s: Socket<undefined>) => {
        s.write(partial);
        setTimeout(() => (fin ? s.end() : s.terminate()), 50);
      },
    },
  });
}

/**
 * A TCP server on 127.0.0.1 that reads and drops what it gets and tells how its connection ended
 * (`seen()`): "fin" for an orderly end, else its close's error code ("ECONNRESET"), or "closed";
 * "none" until then.
 */
export function endWatcher(): { port: number; seen(): string; stop(force?: boolean): void } {
  let seen = "none";
  const l = Bun.listen<undefined>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      data() {},
      end: () => void (seen = "fin"),
      close: (_s: Socket<undefined>, e?: Error) => void (seen === "none" && (seen = (e as { code?: string } | undefined)?.code ?? "closed")),
    },
  });
  return { port: l.port, seen: () => seen, stop: (force) => l.stop(force) };
}

