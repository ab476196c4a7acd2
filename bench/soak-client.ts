/**
 * The soak's load (bench/lib-soak.ts), run as a workload through `tidegate run`: `bun
 * bench/soak-client.ts '<json>'` with {host, port, conns, rate, seconds, per_conn}. `conns`
 * workers each send `GET /1k` over HTTP/1.1 keep-alive on a connection of their own and open a
 * new one after every `per_conn` requests (connection churn). With `rate` > 0 the requests are
 * paced to that many per second in all (each worker on its own schedule); with 0, as fast as the
 * answers come. Every answer must be `200` with a 1024-byte body, else it counts as an error and
 * the connection is replaced.
 *
 * Output on stdout, one JSON line per second `{t, requests, errors, opened, closed}` (totals so
 * far) and at the end `{done: true, requests, errors, opened, closed, seconds, first_error}`.
 */
import type { Socket } from "bun";

interface Input {
  host: string;
  port: number;
  conns: number;
  rate: number;
  seconds: number;
  per_conn: number;
}

const input = JSON.parse(process.argv[2] ?? "") as Input;
const REQUEST = new TextEncoder().encode(`GET /1k HTTP/1.1\r\nHost: soak.test\r\n\r\n`);
const BODY = 1024;
const totals = { requests: 0, errors: 0, opened: 0, closed: 0 };
let firstError: string | null = null;
const started = performance.now();
const deadline = started + input.seconds * 1000;

function fail(why: string): void {
  totals.errors += 1;
  firstError ??= why;
}

/** One connection: answers one request at a time. */
class Conn {
  private buf = "";
  private waiting: { resolve: (ok: boolean) => void } | null = null;
  private closedFlag = false;
  socket!: Socket<undefined>;

  static async open(): Promise<Conn> {
    const c = new Conn();
    c.socket = await Bun.connect({
      hostname: input.host,
      port: input.port,
      socket: {
        data: (_s, chunk) => c.onData(chunk),
        close: () => c.onClose(),
        error: () => c.onClose(),
      },
    });
    totals.opened += 1;
    return c;
  }

  private onData(chunk: Uint8Array): void {
    this.buf += new TextDecoder("latin1").decode(chunk);
    const head = this.buf.indexOf("\r\n\r\n");
    if (head < 0 || this.waiting === null) return;
    const m = /content-length:\s*(\d+)/i.exec(this.buf.slice(0, head));
    const length = m === null ? -1 : Number(m[1]);
    if (this.buf.length < head + 4 + Math.max(length, 0)) return;
    const ok = this.buf.startsWith("HTTP/1.1 200") && length === BODY;
    if (!ok) fail(`answer: ${JSON.stringify(this.buf.slice(0, 80))}`);
    this.buf = this.buf.slice(head + 4 + Math.max(length, 0));
    const w = this.waiting;
    this.waiting = null;
    w.resolve(ok);
  }

  private onClose(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    totals.closed += 1;
    const w = this.waiting;
    this.waiting = null;
    if (w !== null) {
      fail("the connection closed before its answer");
      w.resolve(false);
    }
  }

  request(): Promise<boolean> {
    if (this.closedFlag) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.waiting === null) return;
        this.waiting = null;
        fail("no answer within 10 s");
        resolve(false);
      }, 10_000);
      this.waiting = {
        resolve: (ok) => {
          clearTimeout(timer);
          resolve(ok);
        },
      };
      this.socket.write(REQUEST);
    });
  }

  close(): void {
    this.socket.end();
  }
}

async function worker(index: number): Promise<void> {
  const interval = input.rate > 0 ? (1000 * input.conns) / input.rate : 0;
  let next = started + (interval * index) / input.conns;
  while (performance.now() < deadline) {
    let conn: Conn;
    try {
      conn = await Conn.open();
    } catch (e) {
      fail(`connect: ${(e as Error).message}`);
      await Bun.sleep(100);
      continue;
    }
    // A connection opened carries at least one request, even one opened just before the deadline:
    // one that closed without a byte would be recorded by the proxy with no decision, no conn_open.
    for (let i = 0; i < input.per_conn && (i === 0 || performance.now() < deadline); i++) {
      if (interval > 0) {
        const wait = next - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        next += interval;
      }
      const ok = await conn.request();
      if (!ok) break;
      totals.requests += 1;
    }
    conn.close();
  }
}

const ticker = setInterval(() => {
  process.stdout.write(`${JSON.stringify({ t: Math.round((performance.now() - started) / 1000), ...totals })}\n`);
}, 1000);
await Promise.all(Array.from({ length: input.conns }, (_, i) => worker(i)));
clearInterval(ticker);
await Bun.sleep(200); // the last closes reach their handlers
process.stdout.write(`${JSON.stringify({ done: true, ...totals, seconds: (performance.now() - started) / 1000, first_error: firstError })}\n`);
process.exit(0);
