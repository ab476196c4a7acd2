/**
 * Delivers the audit log to an OpenTelemetry collector over OTLP/HTTP JSON (docs/audit.md,
 * "Export"), in order, nothing skipped.
 *
 * Guarantees:
 * - Events leave in seq order, at most `batchMax` per request (fewer when the JSON would pass
 *   MAX_BODY_BYTES), one request at a time; a batch starts only after the previous one was
 *   acknowledged (2xx) and the cursor saved. The source must give cursor + 1, cursor + 2, ...:
 *   anything else (files deleted before export, a broken chain) stops with `export_source_gap`.
 * - A retryable failure (./post.ts) sends the same batch again, the same bytes, until it is
 *   acknowledged or stop() is called. A refusal (`export_rejected`) or a partial success
 *   (`export_partial`) stops the export: the cursor stays on the last acknowledged seq and the
 *   error says so, naming the status, never the URL's query or a header value.
 * - The cursor is saved only after a 2xx, so after a restart the only events sent twice are
 *   those of the one batch whose 2xx arrived but whose cursor save did not complete (the process
 *   died in between), or whose 2xx was lost on the way back (the batch was retried). Every
 *   record carries `tidegate.seq`, by which a collector can drop those.
 * - Waits: capped exponential backoff with full jitter (../../agent/backoff.ts: 500 ms doubling up
 *   to 30 s), or the collector's Retry-After when it sends one. notify() only cuts the idle wait
 *   of the start() loop short, never a retry wait (new events must not hammer a collector that
 *   is down); stop() cuts either short and lets a request in flight finish (bounded by timeoutMs).
 */
import { Backoff, MIN_WAIT_MS } from "../../agent/backoff.ts";
import { encodeOtlpLogs, type OtlpResource, type ParsedEvent } from "../otlp/encode.ts";
import { checkHeaders, parseEndpoint, type Endpoint } from "./endpoint.ts";
import { ExportError } from "./errors.ts";
import { postLogs } from "./post.ts";

export type { ParsedEvent } from "../otlp/encode.ts";

export interface EventSource {
  /** Up to `max` events with seq above `afterSeq`, in seq order; [] when there is none yet. */
  read(afterSeq: number, max: number): Promise<ParsedEvent[]>;
  /** The seq of the last complete event there is now (null: none), when the source can tell. */
  lastSeq?(): Promise<number | null>;
}

export interface ExportCursor {
  /** The last acknowledged seq, 0 when nothing was ever delivered. */
  load(): Promise<number>;
  save(seq: number): Promise<void>;
}

export type ExportState = "delivering" | "retrying" | "idle" | "stopped" | "failed";

export interface ExportStatus {
  readonly state: ExportState;
  /** The last acknowledged seq. */
  readonly seq: number;
  readonly attempt?: number;
  /** The HTTP status of a failed attempt, absent when there was no answer. */
  readonly status?: number;
  readonly error?: string;
  /** How long the exporter waits before the next attempt. */
  readonly waitMs?: number;
}

export interface OtlpExporterOptions {
  /** The collector's logs endpoint, used as given: `https://collector:4318/v1/logs`. */
  readonly url: string;
  readonly instance: string;
  readonly hostName?: string;
  readonly source: EventSource;
  readonly cursor: ExportCursor;
  /** Sent with every request (an API key, say); never shown in a message. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly batchMax?: number;
  readonly timeoutMs?: number;
  /** The start() loop's wait between two looks at an idle source. */
  readonly pollMs?: number;
  /** Replaces every wait (tests); the default is a timer that stop() clears. */
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly onStatus?: (s: ExportStatus) => void;
}

export const EXPORT_DEFAULTS = Object.freeze({ batchMax: 512, timeoutMs: 10_000, pollMs: 1000, backoffBaseMs: 500, backoffMaxMs: 30_000 });
/** Below the 20 MiB a collector is recommended to accept (OTLP specification, "OTLP/HTTP Request"). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

type Waker = () => void;

function positiveInt(name: string, v: number | undefined, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new ExportError("export_bad_option", `audit: export: ${name} ${v} is not an integer from 1 to ${max}`);
  return v;
}

export class OtlpExporter {
  readonly #o: OtlpExporterOptions;
  readonly #endpoint: Endpoint;
  readonly #headers: Record<string, string>;
  readonly #resource: OtlpResource;
  readonly #batchMax: number;
  readonly #timeoutMs: number;
  readonly #pollMs: number;
  readonly #backoff: Backoff;
  #acked: number | null = null;
  #turn: Promise<unknown> = Promise.resolve();
  #loop: Promise<void> | null = null;
  #stopping = false;
  #pending = false;
  #failure: Error | null = null;
  #lastState: ExportState | null = null;
  readonly #stopWakers = new Set<Waker>();
  readonly #idleWakers = new Set<Waker>();

  constructor(o: OtlpExporterOptions) {
    this.#o = o;
    this.#endpoint = parseEndpoint(o.url);
    this.#headers = checkHeaders(o.headers ?? {});
    this.#resource = { instance: o.instance, ...(o.hostName !== undefined ? { hostName: o.hostName } : {}) };
    encodeOtlpLogs([], this.#resource);
    this.#batchMax = positiveInt("batchMax", o.batchMax, EXPORT_DEFAULTS.batchMax);
    this.#timeoutMs = positiveInt("timeoutMs", o.timeoutMs, EXPORT_DEFAULTS.timeoutMs, 2_147_483_647);
    this.#pollMs = positiveInt("pollMs", o.pollMs, EXPORT_DEFAULTS.pollMs, 2_147_483_647);
    this.#backoff = new Backoff({ baseMs: EXPORT_DEFAULTS.backoffBaseMs, maxMs: EXPORT_DEFAULTS.backoffMaxMs, ...(o.random ? { random: o.random } : {}) });
  }

  /** The last acknowledged seq, null until the cursor was loaded. */
  get seq(): number | null {
    return this.#acked;
  }

  /** Why the start() loop ended on its own, or the last runOnce() failed; null otherwise. */
  get failure(): Error | null {
    return this.#failure;
  }

  /** Delivers every event the source has now; calls are queued, never concurrent. */
  runOnce(): Promise<{ delivered: number }> {
    const run = this.#turn.then(() => this.#deliver());
    this.#turn = run.catch(() => undefined);
    return run;
  }

  /** Keeps delivering: runs runOnce(), then waits pollMs (or a notify()) and again, until stop() or a failure. */
  start(): void {
    if (this.#loop !== null) return;
    this.#failure = null;
    this.#loop = this.#run().finally(() => (this.#loop = null));
  }

  /** New events were written: the start() loop looks at the source now instead of after pollMs. */
  notify(): void {
    this.#pending = true;
    for (const wake of this.#idleWakers) wake();
  }

  /** Ends the loop and any wait; a request in flight completes (and its cursor is saved) first. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#stopWakers) wake();
    await this.#loop;
    await this.#turn;
    this.#stopping = false;
    this.#emit({ state: "stopped", seq: this.#acked ?? 0 });
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      this.#pending = false;
      try {
        await this.runOnce();
      } catch {
        return;
      }
      if (!this.#stopping && !this.#pending) await this.#pause(this.#pollMs, true);
    }
  }

  async #deliver(): Promise<{ delivered: number }> {
    let delivered = 0;
    try {
      this.#failure = null;
      if (this.#acked === null) {
        const seq = await this.#o.cursor.load();
        if (!Number.isSafeInteger(seq) || seq < 0) throw new ExportError("export_bad_cursor", `audit: export: the cursor ${seq} is not a seq`);
        // A cursor past the end of the log: the log was replaced (removed and begun again at seq
        // 1). Reading after the cursor would skip the new chain's first events in silence.
        const last = seq > 0 ? ((await this.#o.source.lastSeq?.()) ?? undefined) : undefined;
        if (last !== undefined && (last ?? 0) < seq) {
          throw new ExportError("export_source_gap", `audit: export: the log ends at seq ${last ?? 0}, before the cursor's seq ${seq}: it was replaced or cut; nothing is skipped (reset the cursor to export the log as it is now)`);
        }
        this.#acked = seq;
      }
      while (!this.#stopping) {
        const events = await this.#o.source.read(this.#acked, this.#batchMax);
        if (events.length === 0) {
          if (this.#lastState !== "idle") this.#emit({ state: "idle", seq: this.#acked });
          break;
        }
        this.#checkContinues(events);
        delivered += await this.#send(events);
      }
      return { delivered };
    } catch (e) {
      this.#failure = e instanceof Error ? e : new Error(String(e));
      this.#emit({ state: "failed", seq: this.#acked ?? 0, error: this.#failure.message });
      throw e;
    }
  }

  #checkContinues(events: readonly ParsedEvent[]): void {
    let want = this.#acked! + 1;
    for (const e of events) {
      if (e.seq !== want) {
        const where = want === this.#acked! + 1 ? `after the cursor's seq ${this.#acked}` : `after seq ${want - 1}`;
        throw new ExportError("export_source_gap", `audit: export: the source gives seq ${e.seq} ${where}, not ${want}: nothing is skipped, the cursor stays at ${this.#acked}`);
      }
      want++;
    }
  }

  /** Sends the longest prefix of `events` that fits, until acknowledged; the count sent, 0 when stopped. */
  async #send(events: readonly ParsedEvent[]): Promise<number> {
    let batch = events;
    let body = JSON.stringify(encodeOtlpLogs(batch, this.#resource));
    while (batch.length > 1 && body.length * 3 > MAX_BODY_BYTES && new TextEncoder().encode(body).byteLength > MAX_BODY_BYTES) {
      batch = batch.slice(0, Math.ceil(batch.length / 2));
      body = JSON.stringify(encodeOtlpLogs(batch, this.#resource));
    }
    const acked = this.#acked!;
    const range = `seq ${batch[0]!.seq}-${batch[batch.length - 1]!.seq}`;
    for (let attempt = 1; !this.#stopping; attempt++) {
      if (attempt === 1) this.#emit({ state: "delivering", seq: acked, attempt });
      const out = await postLogs({ url: this.#endpoint.url, headers: this.#headers, body, timeoutMs: this.#timeoutMs });
      switch (out.kind) {
        case "delivered": {
          const last = batch[batch.length - 1]!.seq;
          await this.#o.cursor.save(last);
          this.#acked = last;
          this.#backoff.reset();
          return batch.length;
        }
        case "retry": {
          const backoff = this.#backoff.next();
          const waitMs = out.retryAfterMs !== undefined ? Math.max(MIN_WAIT_MS, out.retryAfterMs) : backoff;
          this.#emit({ state: "retrying", seq: acked, attempt, ...(out.status !== undefined ? { status: out.status } : {}), error: out.error, waitMs });
          await this.#pause(waitMs, false);
          break;
        }
        case "partial":
          throw new ExportError("export_partial", `audit: export to ${this.#endpoint.shown}: the collector rejected ${out.rejected} of the ${batch.length} records of ${range}${out.message ? ` (${out.message})` : ""}: not retried, not skipped; the cursor stays at ${acked}`);
        case "rejected":
          throw new ExportError("export_rejected", `audit: export to ${this.#endpoint.shown}: status ${out.status} for ${range}${out.message ? ` (${out.message})` : ""}: not retried; the cursor stays at ${acked}`, { status: out.status });
      }
    }
    return 0;
  }

  /** Waits `ms`; stop() ends the wait, and notify() too when `idle`. */
  async #pause(ms: number, idle: boolean): Promise<void> {
    if (this.#stopping) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake: Waker = () => undefined;
    await new Promise<void>((resolve) => {
      wake = resolve;
      this.#stopWakers.add(wake);
      if (idle) this.#idleWakers.add(wake);
      if (this.#o.sleep) this.#o.sleep(ms).then(resolve, resolve);
      else timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#stopWakers.delete(wake);
    this.#idleWakers.delete(wake);
  }

  #emit(s: ExportStatus): void {
    this.#lastState = s.state;
    try {
      this.#o.onStatus?.(s);
    } catch {
      // A status callback is a logger: its failure must not stop or skip delivery.
    }
  }
}
