/** Base64, base64url and hex without Buffer, so the portable core runs on any web-standard runtime. */

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * The TC39 base64 methods (`Uint8Array.prototype.toBase64`, `Uint8Array.fromBase64`), native in
 * Bun and Deno; null where a runtime lacks them. The fallbacks below give the same results.
 */
const native = (() => {
  const proto = Uint8Array.prototype as { toBase64?: () => string };
  const ctor = Uint8Array as unknown as { fromBase64?: (s: string, o: { lastChunkHandling: string }) => Uint8Array };
  return typeof proto.toBase64 === "function" && typeof ctor.fromBase64 === "function"
    ? { encode: (b: Uint8Array) => (b as unknown as { toBase64(): string }).toBase64(), decode: (t: string) => ctor.fromBase64!(t, { lastChunkHandling: "loose" }) }
    : null;
})();

export function toBase64(bytes: Uint8Array): string {
  return native !== null ? native.encode(bytes) : toBase64Fallback(bytes);
}

/** The encoder for runtimes without the native one (exported for the test comparing the two). */
export function toBase64Fallback(bytes: Uint8Array): string {
  // Not a spread of the array: that walks an iterator per byte and costs as much as a signature.
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x2000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x2000) as unknown as number[]);
  }
  return btoa(s);
}

/** The decoder for runtimes without the native one, for input fromBase64 has validated. */
export function fromBase64Fallback(text: string): Uint8Array | null {
  let bin: string;
  try {
    bin = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/**
 * Strict standard base64 (padding optional only when the length says so). Returns null on bad
 * input, including a non-canonical last character whose unused bits are not zero (RFC 4648
 * section 3.5), so each byte string has exactly one accepted encoding.
 */
export function fromBase64(text: string): Uint8Array | null {
  if (!B64.test(text) || (text.includes("=") && text.length % 4 !== 0) || text.length % 4 === 1) return null;
  let end = text.length;
  while (end > 0 && text[end - 1] === "=") end--;
  const unused = [0, 0, 0x0f, 0x03][end % 4]!;
  if (unused !== 0 && (B64_ALPHABET.indexOf(text[end - 1]!) & unused) !== 0) return null;
  if (native === null) return fromBase64Fallback(text);
  try {
    return native.decode(text);
  } catch {
    return null;
  }
}

export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Strict unpadded base64url (RFC 7515 section 2). Returns null on bad input. */
export function fromBase64Url(text: string): Uint8Array | null {
  if (!B64URL.test(text) || text.length % 4 === 1) return null;
  return fromBase64(text.replace(/-/g, "+").replace(/_/g, "/"));
}

export function toHex(bytes: Uint8Array, sep = ""): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(sep);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An ArrayBuffer holding exactly these bytes (pkijs and WebCrypto take ArrayBuffers). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return bytes.slice().buffer as ArrayBuffer;
}
