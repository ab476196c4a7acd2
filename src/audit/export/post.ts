/**
 * One OTLP/HTTP export attempt and what it means (OTLP specification, "OTLP/HTTP Response"):
 * - 2xx: delivered, unless the body's `partialSuccess.rejectedLogRecords` is above 0 (the
 *   collector dropped records; the spec forbids a retry, the audit trail forbids a skip: the
 *   caller stops), or the body could not be read whole (over BODY_READ_MAX bytes, or unfinished
 *   within the timeout: a partialSuccess may lie past what was read; the caller stops too);
 * - 429, 502, 503, 504 (the spec's retryable codes) and 408: try again, after `Retry-After`
 *   (seconds or an HTTP date, capped at RETRY_AFTER_MAX_MS) when given;
 * - no answer (refused, reset, timed out): try again;
 * - anything else, redirects included (they are not followed): rejected.
 * The request goes through ky with its own retries off (`retry: 0`), so every retry and its wait
 * is the exporter's, visible and stoppable. Descriptions never carry the URL or a header value.
 */
import ky from "ky";
import { quote } from "../../errors.ts";

export const RETRYABLE_STATUSES: readonly number[] = [408, 429, 502, 503, 504];
export const RETRY_AFTER_MAX_MS = 5 * 60_000;
/** Bytes of a response body read for partialSuccess or an error message; the rest is dropped. */
const BODY_READ_MAX = 64 * 1024;

export type Outcome =
  | { readonly kind: "delivered" }
  | { readonly kind: "partial"; readonly rejected: string; readonly message: string }
  | { readonly kind: "retry"; readonly status?: number; readonly retryAfterMs?: number; readonly error: string }
  | { readonly kind: "rejected"; readonly status: number; readonly message: string };

export interface PostOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly timeoutMs: number;
}

export async function postLogs(o: PostOptions): Promise<Outcome> {
  let res: Response;
  try {
    res = await ky.post(o.url, {
      body: o.body,
      headers: { ...o.headers, "content-type": "application/json" },
      retry: 0,
      timeout: o.timeoutMs,
      throwHttpErrors: false,
      redirect: "manual",
    });
  } catch (e) {
    return { kind: "retry", error: describeFailure(e, o.timeoutMs) };
  }
  const { text, whole } = await readCapped(res, o.timeoutMs);
  if (res.status >= 200 && res.status < 300) {
    // A partialSuccess may lie past what was read: records rejected unseen would be skipped for good.
    if (!whole) return { kind: "partial", rejected: "an unknown number", message: `its ${res.status} answer could not be read whole (over ${BODY_READ_MAX} bytes, or unfinished within ${o.timeoutMs} ms), so whether it rejected records cannot be told` };
    const partial = (parseJson(text) as { partialSuccess?: { rejectedLogRecords?: unknown; errorMessage?: unknown } } | null)?.partialSuccess;
    const rejected = String(partial?.rejectedLogRecords ?? "0");
    if (/^[1-9][0-9]*$/.test(rejected)) return { kind: "partial", rejected, message: messageOf(partial?.errorMessage) };
    return { kind: "delivered" };
  }
  if (RETRYABLE_STATUSES.includes(res.status)) {
    const after = parseRetryAfter(res.headers.get("retry-after"), Date.now());
    return { kind: "retry", status: res.status, ...(after !== null ? { retryAfterMs: after } : {}), error: `status ${res.status}` };
  }
  const status = (parseJson(text) as { message?: unknown } | null)?.message;
  return { kind: "rejected", status: res.status, message: messageOf(status) };
}

/** Milliseconds to wait from a Retry-After value (delay-seconds or HTTP-date, RFC 9110 10.2.3), or null. */
export function parseRetryAfter(value: string | null, nowMs: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  let ms: number;
  if (/^[0-9]+$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at) || !/[A-Za-z]/.test(v)) return null;
    ms = at - nowMs;
  }
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(0, ms));
}

/** The kind of failure without its message (fetch and ky messages repeat the URL). */
function describeFailure(e: unknown, timeoutMs: number): string {
  const err = e as { name?: unknown; code?: unknown; cause?: { code?: unknown } } | null;
  if (err?.name === "TimeoutError") return `no answer within ${timeoutMs} ms`;
  const code = [err?.code, err?.cause?.code].find((c) => typeof c === "string" && /^[A-Za-z0-9_]{1,40}$/.test(c));
  const name = typeof err?.name === "string" && /^[A-Za-z]{1,40}$/.test(err.name) ? err.name : "Error";
  return code !== undefined ? `connection failed (${code as string})` : `request failed (${name})`;
}

/** At most BODY_READ_MAX bytes of the body, read within `timeoutMs` ("" when it fails or stalls); `whole`: the body ended within both. */
async function readCapped(res: Response, timeoutMs: number): Promise<{ text: string; whole: boolean }> {
  if (res.body === null) return { text: "", whole: true };
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;
  const read = async (): Promise<boolean> => {
    while (size <= BODY_READ_MAX) {
      const { done, value } = await reader.read();
      if (done) return (ended = true);
      parts.push(value);
      size += value.byteLength;
    }
    return true;
  };
  const stalled = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
  const complete = await Promise.race([read(), stalled]).catch(() => false);
  clearTimeout(timer);
  reader.cancel().catch(() => undefined);
  if (!complete) return { text: "", whole: false };
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) all.set(p, at), (at += p.byteLength);
  return { text: new TextDecoder().decode(all.subarray(0, BODY_READ_MAX)), whole: ended };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function messageOf(v: unknown): string {
  return typeof v === "string" && v !== "" ? quote(v) : "";
}
