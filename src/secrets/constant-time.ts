/**
 * Comparing a secret with a candidate without an early exit: the time taken depends on the
 * lengths only, never on where the first difference is. Strings compare as UTF-8 bytes.
 */
const encoder = new TextEncoder();

export function constantTimeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  const x = typeof a === "string" ? encoder.encode(a) : a;
  const y = typeof b === "string" ? encoder.encode(b) : b;
  const n = Math.max(x.length, y.length);
  let diff = x.length ^ y.length;
  for (let i = 0; i < n; i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
