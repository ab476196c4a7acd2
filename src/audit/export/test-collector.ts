/**
 * A real OTLP/HTTP logs receiver for the exporter's tests: Bun.serve on 127.0.0.1, every request
 * body read with the strict decoder (a body outside the mapping is answered 400, so a test sees
 * it), then answered by the test's plan: an error Response, or null to accept the records. It
 * can be stopped and started again on the same port.
 */
import type { Server } from "bun";
import { decodeOtlpLogs, type DecodedRecord } from "../otlp/decode.ts";
import type { EventSource, ParsedEvent } from "./exporter.ts";

export interface SeenRequest {
  readonly n: number;
  readonly path: string;
  readonly contentType: string | null;
  readonly authorization: string | null;
  readonly seqs: readonly number[];
}

/** Answers request `n` (1-based, over the collector's life) carrying `records`; null accepts. */
export type Plan = (n: number, records: readonly DecodedRecord[]) => Response | null | Promise<Response | null>;

export class TestCollector {
  readonly received: DecodedRecord[] = [];
  readonly requests: SeenRequest[] = [];
  plan: Plan;
  port = 0;
  restarts = 0;
  #server: Server<undefined> | null = null;

  constructor(plan: Plan = () => null) {
    this.plan = plan;
  }

  static start(plan?: Plan): TestCollector {
    const c = new TestCollector(plan);
    c.listen();
    return c;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/v1/logs`;
  }

  get up(): boolean {
    return this.#server !== null;
  }

  get seqs(): number[] {
    return this.received.map((r) => r.seq);
  }

  listen(): void {
    if (this.#server !== null) return;
    if (this.port !== 0) this.restarts++;
    this.#server = Bun.serve({ hostname: "127.0.0.1", port: this.port, fetch: (req) => this.#handle(req) });
    this.port = this.#server.port!;
  }

  async close(): Promise<void> {
    const s = this.#server;
    this.#server = null;
    await s?.stop(true);
  }

  async #handle(req: Request): Promise<Response> {
    const n = this.requests.length + 1;
    let records: DecodedRecord[];
    try {
      records = decodeOtlpLogs(await req.text());
    } catch (e) {
      return Response.json({ code: 3, message: (e as Error).message }, { status: 400 });
    }
    this.requests.push({
      n,
      path: new URL(req.url).pathname,
      contentType: req.headers.get("content-type"),
      authorization: req.headers.get("authorization"),
      seqs: records.map((r) => r.seq),
    });
    const answer = await this.plan(n, records);
    if (answer !== null) return answer;
    this.received.push(...records);
    return Response.json({});
  }
}

/** Events kept in memory (the test may push more), given as the file source gives them. */
export function memorySource(events: ParsedEvent[]): EventSource {
  return { read: async (after, max) => events.filter((e) => e.seq > after).slice(0, max) };
}

/** Resolves when `cond` holds, polling; fails after `ms`. */
export async function until(cond: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** `p`, or a failure after `ms`. */
export function within<T>(p: Promise<T>, ms = 5000, what = "promise"): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
