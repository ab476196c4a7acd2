// The workload's side of an intercepted TLS connection (client-side.ts tlsClient) over a real
// socket and a real curl: what the socket does not take at once goes on from where it stopped.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Socket } from "bun";
import { InterceptionCa } from "../../intercept/ca.ts";
import { tlsClient, type Feed, type Leaf } from "./client-side.ts";

let dir: string;
let caFile: string;
let leaf: Leaf;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-client-side-"));
  const ca = await InterceptionCa.open({ stateDir: join(dir, "ca"), label: "test" });
  leaf = await ca.leafFor("a.test");
  caFile = join(dir, "ca.pem");
  await Bun.write(caFile, ca.certPem);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("tlsClient", () => {
  test("a socket that takes a few hundred bytes a write still delivers a 200 KB answer whole, in order", async () => {
    const body = Array.from({ length: 200_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
    const answer = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    let shortWrites = 0;
    const server = Bun.listen<{ feed: Feed | null }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => void (s.data = { feed: null }),
        data(s, chunk) {
          if (s.data.feed !== null) return s.data.feed.data(chunk);
          // at most 700 bytes per write; the rest waits for a drain, which a timer plays here
          const stingy = {
            write(d: Uint8Array, offset = 0, length = d.length - offset) {
              const n = Math.min(700, length);
              if (n < length) shortWrites += 1;
              return s.write(d, offset, n);
            },
            end: () => s.end(),
            terminate: () => s.terminate(),
            pause: () => s.pause(),
            resume: () => s.resume(),
          };
          let answered = false;
          const c = tlsClient(stingy as unknown as Socket<unknown>, new Uint8Array(chunk), leaf, {
            data() {
              if (answered) return;
              answered = true;
              c.side.write(new TextEncoder().encode(answer));
              c.side.end();
            },
            end() {},
            closed() {},
            drain() {},
          });
          s.data.feed = c.feed;
          const t = setInterval(() => c.feed.drain(), 1);
          setTimeout(() => clearInterval(t), 8_000);
        },
      },
    });
    try {
      const curl = Bun.spawn(["curl", "-s", "--cacert", caFile, "--resolve", `a.test:${server.port}:127.0.0.1`, `https://a.test:${server.port}/`, "-m", "8"], { stdout: "pipe", stderr: "pipe" });
      const got = await new Response(curl.stdout).text();
      expect(await curl.exited).toBe(0);
      expect(got.length).toBe(body.length);
      expect(got === body).toBe(true);
      expect(shortWrites).toBeGreaterThan(10);
    } finally {
      server.stop(true);
    }
  }, 15_000);
});
