/**
 * Byte-level edits of a valid input, for the fuzzers of byte parsers (the peek, HTTP/1.1).
 * Portable: fast-check only, so the portable core's tests use it under Deno too.
 *
 * `byteMutation` is one edit: a byte set, inserted or deleted at any offset (taken modulo the
 * length); `mutateBytes` applies a list of them in order and returns a new array.
 */
import fc from "fast-check";

export interface ByteMutation {
  readonly op: "set" | "insert" | "delete";
  readonly at: number;
  readonly byte: number;
}

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.record({ op: fc.constantFrom("set", "insert", "delete"), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) });

export function mutateBytes(b: Uint8Array, ms: readonly ByteMutation[]): Uint8Array {
  const a = [...b];
  for (const m of ms) {
    const i = m.at % (a.length + 1);
    if (m.op === "insert") a.splice(i, 0, m.byte);
    else if (a.length > 0 && m.op === "delete") a.splice(i % a.length, 1);
    else if (a.length > 0) a[i % a.length] = m.byte;
  }
  return Uint8Array.from(a);
}
