/**
 * Test support: the TLS vector encodings (RFC 8446 section 3.4) the ClientHello tests build
 * their inputs with, and readers of the groups a real client's hello offers. Not used by the parser.
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

/** Extension `type` of a record holding one whole ClientHello; null when absent. Throws on anything else. */
export function helloExtension(record: Uint8Array, type: number): Uint8Array | null {
  const at = (i: number) => record[i] ?? 0;
  const u16At = (i: number) => (at(i) << 8) | at(i + 1);
  if (at(0) !== 22 || at(5) !== 1) throw new Error("not a ClientHello record");
  let p = 5 + 4 + 2 + 32; // record header, handshake header, version, random
  p += 1 + at(p); // session id
  p += 2 + u16At(p); // cipher suites
  p += 1 + at(p); // compression methods
  const end = p + 2 + u16At(p);
  for (p += 2; p < end; p += 4 + u16At(p + 2)) if (u16At(p) === type) return record.subarray(p + 4, p + 4 + u16At(p + 2));
  return null;
}

/** supported_groups (RFC 8446 section 4.2.7): the groups offered, in order. */
export function offeredGroups(record: Uint8Array): number[] {
  const e = helloExtension(record, 10) ?? new Uint8Array(2);
  return Array.from({ length: ((e[0]! << 8) | e[1]!) / 2 }, (_, i) => (e[2 + 2 * i]! << 8) | e[3 + 2 * i]!);
}

/** key_share (section 4.2.8): the groups a key was sent for, in order. */
export function sharedGroups(record: Uint8Array): number[] {
  const e = helloExtension(record, 51) ?? new Uint8Array(2);
  const out: number[] = [];
  for (let p = 2; p < e.length; p += 4 + ((e[p + 2]! << 8) | e[p + 3]!)) out.push((e[p]! << 8) | e[p + 1]!);
  return out;
}

/** Named groups (IANA TLS Supported Groups registry). */
export const GROUP = { X25519MLKEM768: 0x11ec, X25519: 0x001d, P256: 0x0017, P384: 0x0018 } as const;
