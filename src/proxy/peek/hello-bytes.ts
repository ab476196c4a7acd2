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
