/**
 * Test support: the TLS vector encodings (RFC 8446 section 3.4) the ClientHello tests build
 * their inputs with. Not used by the parser.
 */
export type Bytes = readonly number[];
export const u16 = (n: number): number[] => [(n >> 8) & 255, n & 255];
export const u24 = (n: number): number[] => [(n >> 16) & 255, (n >> 8) & 255, n & 255];
export const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
export const vec8 = (b: Bytes): number[] => [b.length, ...b];
export const vec16 = (b: Bytes): number[] => [...u16(b.length), ...b];
export const ext = (type: number, data: Bytes): number[] => [...u16(type), ...vec16(data)];

/** A server_name extension (RFC 6066 section 3) of one host_name entry; a string is taken byte per character. */
export const serverNameExt = (name: string | Bytes): number[] => ext(0, vec16([0, ...vec16(typeof name === "string" ? ascii(name) : name)]));

/** A TLS 1.2 ClientHello with these extensions, in one record. */
export function minimalHello(extensions: Bytes): Uint8Array {
  const body = [3, 3, ...new Array<number>(32).fill(1), 0, ...vec16([0, 0x2f]), ...vec8([0]), ...vec16(extensions)];
  return Uint8Array.from([22, 3, 1, ...u16(body.length + 4), 1, ...u24(body.length), ...body]);
}
