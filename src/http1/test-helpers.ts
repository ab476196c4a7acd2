/**
 * Helpers of the http1 tests: byte strings, and a parser run reduced to comparable steps (body
 * and tunnel pieces joined, so runs cut differently compare equal).
 */
import { Http1Error } from "./errors.ts";
import type { HeaderList } from "./headers.ts";
import { RequestParser } from "./request-parser.ts";
import { ResponseParser } from "./response-parser.ts";
import type { Http1Event, RequestHead, ResponseHead } from "./types.ts";

export function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function text(b: Uint8Array): string {
  let s = "";
  for (const c of b) s += String.fromCharCode(c);
  return s;
}

export type Step<H> =
  | { kind: "head"; head: H }
  | { kind: "body"; text: string }
  | { kind: "end"; trailers: [string, string][] }
  | { kind: "tunnel"; text: string }
  | { kind: "error"; code: string; message: string };

/** Appends `events` to `steps`, joining body (and tunnel) pieces with the piece before. */
export function addSteps<H>(steps: Step<H>[], events: readonly Http1Event<H>[]): void {
  for (const e of events) {
    const prev = steps.at(-1);
    if (e.kind === "body" || e.kind === "tunnel") {
      if (prev !== undefined && prev.kind === e.kind) prev.text += text(e.bytes);
      else steps.push({ kind: e.kind, text: text(e.bytes) });
    } else if (e.kind === "head") steps.push({ kind: "head", head: e.head });
    else if (e.kind === "end") steps.push({ kind: "end", trailers: trailerList(e.trailers) });
    else {
      if (!(e.error instanceof Http1Error)) throw new Error("an error event without an Http1Error");
      steps.push({ kind: "error", code: e.error.code, message: e.error.message });
    }
  }
}

function trailerList(h: HeaderList): [string, string][] {
  return h.entries.map(([n, v]) => [n, v]);
}

/** Where to cut `input`: every listed offset (sorted, within bounds). */
function pieces(input: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const at = [...new Set(cuts.filter((c) => c > 0 && c < input.length))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const c of [...at, input.length]) {
    out.push(input.slice(from, c));
    from = c;
  }
  return out;
}

/**
 * A RequestParser fed `input` cut at `cuts`, then finish(). Held bytes (after CONNECT or an
 * upgrade request) are resumed after each push, as when the server refuses the switch.
 */
export function runRequests(input: Uint8Array | string, cuts: readonly number[] = []): Step<RequestHead>[] {
  const p = new RequestParser();
  const steps: Step<RequestHead>[] = [];
  for (const piece of pieces(typeof input === "string" ? bytes(input) : input, cuts)) {
    addSteps(steps, p.push(piece));
    while (p.held) addSteps(steps, p.resume());
    if (errorCode(steps) !== null) return steps;
  }
  addSteps(steps, p.finish());
  return steps;
}

/** A ResponseParser expecting `methods` (a method, or [method, upgrade]), fed like runRequests. */
export function runResponses(input: Uint8Array | string, methods: readonly (string | [string, boolean])[], cuts: readonly number[] = []): Step<ResponseHead>[] {
  const p = new ResponseParser();
  for (const m of methods) {
    if (typeof m === "string") p.expect(m);
    else p.expect(m[0], m[1]);
  }
  const steps: Step<ResponseHead>[] = [];
  for (const piece of pieces(typeof input === "string" ? bytes(input) : input, cuts)) {
    addSteps(steps, p.push(piece));
    if (errorCode(steps) !== null) return steps;
  }
  addSteps(steps, p.finish());
  return steps;
}

/** The code of the error step, null when there is none. */
export function errorCode(steps: readonly Step<unknown>[]): string | null {
  const last = steps.at(-1);
  return last?.kind === "error" ? last.code : null;
}
