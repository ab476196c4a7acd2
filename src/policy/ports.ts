/**
 * Ports and port ranges of rules.
 *
 * Accepted: an integer 1..65535 (as YAML gives it), a string "N" or "N-M" with 1 <= N <= M <=
 * 65535 (decimal, no leading zeros, spaces or sign), or "any" (1-65535). Port 0 is no port a
 * connection can have and is rejected, as are floats, booleans, null and everything else.
 * Canonical text: "443", "8000-8080", and "any" for the whole range (however it was written).
 */
import { quote } from "../errors.ts";
import { PolicyError } from "./errors.ts";

export interface PortRange {
  readonly lo: number;
  readonly hi: number;
  readonly text: string;
}

export const MAX_PORT = 65535;

function shown(x: unknown): string {
  if (typeof x === "string") return quote(x);
  if (typeof x === "number" || typeof x === "boolean" || typeof x === "bigint") return String(x);
  if (x === null) return "null";
  if (Array.isArray(x)) return `[${x.slice(0, 4).map((v) => (typeof v === "object" && v !== null ? "..." : shown(v))).join(", ")}${x.length > 4 ? ", ..." : ""}]`;
  return `(a value of type ${typeof x})`;
}

function badPort(x: unknown, why: string): PolicyError {
  return new PolicyError("policy_bad_port", `policy: port ${shown(x)}: ${why}`);
}

/** The port a decimal string without sign or leading zeros gives, or -1. */
function decimalPort(s: string): number {
  if (s.length === 0 || s.length > 5 || s.charCodeAt(0) === 48) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return n <= MAX_PORT ? n : -1;
}

function numericPort(x: unknown): number {
  if (typeof x === "number") return Number.isInteger(x) && x >= 1 && x <= MAX_PORT ? x : -1;
  if (typeof x === "bigint") return x >= 1n && x <= BigInt(MAX_PORT) ? Number(x) : -1;
  return -1;
}

function range(lo: number, hi: number): PortRange {
  const text = lo === 1 && hi === MAX_PORT ? "any" : lo === hi ? String(lo) : `${lo}-${hi}`;
  return Object.freeze({ lo, hi, text });
}

/** Throws PolicyError policy_bad_port. */
export function parsePortRange(x: unknown): PortRange {
  if (typeof x === "number" || typeof x === "bigint") {
    const n = numericPort(x);
    if (n < 0) throw badPort(x, `not an integer 1..${MAX_PORT}`);
    return range(n, n);
  }
  if (Array.isArray(x)) throw badPort(x, `a list: a rule takes one port, a range "N-M" or "any"; write a rule per port`);
  if (typeof x !== "string") throw badPort(x, `want an integer 1..${MAX_PORT}, "N-M" or "any"`);
  if (x === "any") return range(1, MAX_PORT);
  const dash = x.indexOf("-");
  const lo = decimalPort(dash < 0 ? x : x.slice(0, dash));
  const hi = dash < 0 ? lo : decimalPort(x.slice(dash + 1));
  if (lo < 0 || hi < 0) {
    throw badPort(x, `want "N" or "N-M" with decimal ports 1..${MAX_PORT} (no leading zeros, spaces or sign), or "any"`);
  }
  if (lo > hi) throw badPort(x, `the range is empty: ${lo} is above ${hi}`);
  return range(lo, hi);
}

/** A single port 1..65535, as an integer or a decimal string; throws policy_bad_port. */
export function parsePort(x: unknown): number {
  const n = typeof x === "string" ? decimalPort(x) : numericPort(x);
  if (n < 0) throw badPort(x, `not a port 1..${MAX_PORT}`);
  return n;
}

export function portsOverlap(a: PortRange, b: PortRange): boolean {
  return a.lo <= b.hi && b.lo <= a.hi;
}

/** True when `port` is in `r`. */
export function portInRange(r: PortRange, port: number): boolean {
  return port >= r.lo && port <= r.hi;
}
