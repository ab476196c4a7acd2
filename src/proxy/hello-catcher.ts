/**
 * For the tests of what an upstream leg offers: a plain TCP listener that takes the first whole
 * TLS record of each connection (a client's ClientHello), keeps it and closes, so the leg never
 * becomes ready. Read the records with hello-bytes.ts (offeredGroups, sharedGroups).
 */
import type { Socket } from "bun";

export interface HelloCatcher {
  readonly port: number;
  /** Every record taken so far, in order. */
  readonly hellos: Uint8Array[];
  /** The next record taken. */
  next(): Promise<Uint8Array>;
  stop(): void;
}

export function catchHellos(): HelloCatcher {
  const hellos: Uint8Array[] = [];
  let waiting: ((b: Uint8Array) => void) | null = null;
  const server = Bun.listen<{ got: Uint8Array }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open: (s) => void (s.data = { got: new Uint8Array(0) }),
      data(s: Socket<{ got: Uint8Array }>, chunk) {
        const got = new Uint8Array(s.data.got.length + chunk.length);
        got.set(s.data.got);
        got.set(chunk, s.data.got.length);
        s.data.got = got;
        // the whole record: 5 bytes of header and its length
        if (got.length < 5 || got.length < 5 + ((got[3]! << 8) | got[4]!)) return;
        hellos.push(got);
        waiting?.(got);
        waiting = null;
        s.terminate();
      },
    },
  });
  return {
    port: server.port,
    hellos,
    next: () => new Promise<Uint8Array>((resolve) => (waiting = resolve)),
    stop: () => server.stop(true),
  };
}
