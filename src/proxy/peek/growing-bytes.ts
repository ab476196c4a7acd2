/**
 * Bytes that arrive in pieces, kept in one array that doubles when full: n bytes appended in any
 * pieces cost O(n) copying in all (each byte is copied at most once per doubling), where joining
 * a list of pieces on every arrival would cost O(n) each time. The egress listener keeps a
 * connection's first bytes in one, and the ClientHello reader its handshake bytes.
 *
 * `view()` shares the array: a later append may write past its end but never changes the bytes
 * it shows. `copy()` is for bytes handed on to something that keeps them.
 */
export class GrowingBytes {
  private bytes: Uint8Array;
  private used = 0;

  constructor(capacity = 256) {
    this.bytes = new Uint8Array(capacity);
  }

  get length(): number {
    return this.used;
  }

  /** The backing array: `length` bytes, then room. Valid until the next append. */
  get array(): Uint8Array {
    return this.bytes;
  }

  /** Copies `b` in (with `set`, which reads a runtime's buffer without a method call on it: src/http1/bytes.ts). */
  append(b: Uint8Array): void {
    const need = this.used + b.length;
    if (need > this.bytes.length) {
      const grown = new Uint8Array(Math.max(need, this.bytes.length * 2));
      grown.set(this.bytes.subarray(0, this.used));
      this.bytes = grown;
    }
    this.bytes.set(b, this.used);
    this.used = need;
  }

  view(): Uint8Array {
    return this.bytes.subarray(0, this.used);
  }

  copy(): Uint8Array {
    return this.bytes.slice(0, this.used);
  }
}
