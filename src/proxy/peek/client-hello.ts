/**
 * The TLS ClientHello a workload sends first, read for its server name (RFC 6066 section 3) and
 * its ALPN list (RFC 7301 section 3.1). Structure: RFC 8446 section 4.1.2 (RFC 5246 section
 * 7.4.1.2 for TLS 1.0 to 1.2, whose ClientHello may end without extensions).
 *
 * Refused with peek_tls_malformed:
 * - records (RFC 8446 section 5.1): a content type other than 22 (handshake) before the ClientHello
 *   is complete, so nothing is interleaved with its fragments; a record version outside
 *   0x0301..0x0304 (SSL 3.0 and older are refused); a fragment of 0 or more than 2^14 bytes; a
 *   record that goes on after the ClientHello (it must end on a record boundary: nothing legitimate
 *   follows it in the same record). Records after its last one (ChangeCipherSpec, early data) are
 *   not read.
 * - the handshake: a type other than 1 (client_hello); legacy_version outside 0x0301..0x0303; a
 *   session id over 32 bytes; cipher suites of odd length or none; no compression method, or none
 *   of them null (0); an extensions block that does not end exactly where the message ends; any
 *   vector running past its container; an extension type twice (RFC 8446 section 4.2); an
 *   extension after pre_shared_key (section 4.2.11); an ALPN list that is empty, holds an empty
 *   name, or does not fill its extension.
 * Refused with peek_tls_bad_sni: a server_name list that is empty, holds a second entry or an
 * entry of another type than host_name (0); a host_name that is empty, over 255 bytes, or holds a
 * byte other than letters, digits, "-", ".", "_" (a NUL among them), or that normalizeServerName
 * refuses. ":" is let through only to reach an IPv6 literal, "[" and "]" only as the first and the
 * last byte to reach a bracketed one: an IP literal (IPv4, IPv6, bracketed IPv6) gives serverName
 * null, as no server_name extension does, since RFC 6066 section 3 allows no address there.
 * Accepted names are lowercase without their trailing dot (normalizeServerName).
 * Refused with peek_too_large: records carrying the ClientHello over MAX_PEEK_BYTES in all,
 * headers included, as soon as a length field says so.
 *
 * On a prefix: null ("need more") while everything present fits a valid ClientHello; the error as
 * soon as something present does not. ALPN names are kept byte for byte (one character per byte),
 * so GREASE values (RFC 8701) survive.
 */
import { quote } from "../../errors.ts";
import { PolicyError } from "../../policy/errors.ts";
import { normalizeServerName } from "../../policy/host-name.ts";
import { MAX_PEEK_BYTES, PeekError } from "./errors.ts";
import { GrowingBytes } from "./growing-bytes.ts";

export interface TlsHello {
  readonly kind: "tls";
  /** Lowercase, no trailing dot; null without SNI or when it names an IP address. */
  readonly serverName: string | null;
  readonly alpn: readonly string[];
  /** Bytes of the records that carry the ClientHello, record headers included. */
  readonly clientHelloLength: number;
}

const HANDSHAKE = 22;
const CLIENT_HELLO = 1;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
const MAX_FRAGMENT = 1 << 14;
const MAX_SESSION_ID = 32;
const MAX_SNI = 255;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;
const EXT_PRE_SHARED_KEY = 41;

function malformed(why: string): PeekError {
  return new PeekError("peek_tls_malformed", `peek: tls: ${why}`);
}

function badSni(why: string, cause?: unknown): PeekError {
  return new PeekError("peek_tls_bad_sni", `peek: tls: server name ${why}`, cause === undefined ? undefined : { cause });
}

function tooLarge(why: string): PeekError {
  return new PeekError("peek_too_large", `peek: tls: ${why} (at most ${MAX_PEEK_BYTES} bytes)`);
}

function hex(n: number, digits: number): string {
  return `0x${n.toString(16).padStart(digits, "0")}`;
}

function latin1(b: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += String.fromCharCode(b[i] ?? 0);
  return s;
}

/** Checks the present bytes of the record header at `at`; its fragment length, or -1 if cut. */
function recordLength(bytes: Uint8Array, at: number): number {
  const type = bytes[at];
  if (type !== undefined && type !== HANDSHAKE) throw malformed(`a record of type ${type} inside the ClientHello (want 22, handshake)`);
  const major = bytes[at + 1];
  const minor = bytes[at + 2];
  if (major !== undefined && major !== 3) throw malformed(`record version ${hex(major, 2)}.. is not TLS`);
  if (minor !== undefined && (minor < 1 || minor > 4)) {
    throw malformed(minor === 0 ? "record version 0x0300: SSL 3.0 is refused" : `record version ${hex(0x300 | minor, 4)}`);
  }
  if (bytes.length < at + RECORD_HEADER) return -1;
  const len = ((bytes[at + 3] ?? 0) << 8) | (bytes[at + 4] ?? 0);
  if (len === 0 || len > MAX_FRAGMENT) throw malformed(`a record fragment of ${len} bytes (1..${MAX_FRAGMENT})`);
  return len;
}

/**
 * Parks a reader that needs bytes not yet present; it resumes where it stopped. Only the three
 * readers below are generators: a field is read by a plain call once `has` says it is present.
 */
type Wait<T> = Generator<void, T, void>;

/** A cursor over the handshake bytes as they arrive (`b[0, have)`). */
class Reader {
  pos: number;
  constructor(
    private readonly src: GrowingBytes,
    from: number,
  ) {
    this.pos = from;
  }

  get b(): Uint8Array {
    return this.src.array;
  }

  get have(): number {
    return this.src.length;
  }

  /** Whether the `n` bytes at `pos` are present; malformed when they would run past `end`, their container. */
  has(n: number, end: number, what: string): boolean {
    if (this.pos + n > end) throw malformed(`${what} runs past its container`);
    return this.pos + n <= this.src.length;
  }

  /** Where the next `n` bytes (present: `has`) start; moves past them. */
  take(n: number): number {
    const at = this.pos;
    this.pos += n;
    return at;
  }

  /** Moves over `n` bytes that need not be present yet (their content is not checked). */
  skip(n: number, end: number, what: string): void {
    if (this.pos + n > end) throw malformed(`${what} runs past its container`);
    this.pos += n;
  }

  u8(): number {
    return this.b[this.pos++] ?? 0;
  }

  u16(): number {
    const at = this.take(2);
    return ((this.b[at] ?? 0) << 8) | (this.b[at + 1] ?? 0);
  }

  /** Reads a vector's length of 1 or 2 bytes (present: `has`); the vector's end, checked against `end`. */
  vector(lengthBytes: 1 | 2, end: number, what: string): number {
    const n = lengthBytes === 1 ? this.u8() : this.u16();
    if (this.pos + n > end) throw malformed(`${what} (${n} bytes) runs past its container`);
    return this.pos + n;
  }
}

/** Letters, digits, "-", ".", "_" (as policy host names), and ":" of an IPv6 literal. */
function isNameByte(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 58;
}

/** The server_name extension's data, `r.pos` to `end` (RFC 6066 section 3). */
function* readServerName(r: Reader, end: number): Wait<string | null> {
  while (!r.has(2, end, "the length of the server_name list")) yield;
  const listEnd = r.vector(2, end, "the server_name list");
  if (listEnd !== end) throw malformed("the server_name list does not fill its extension");
  if (listEnd === r.pos) throw badSni("list is empty");
  while (!r.has(1, listEnd, "a server_name entry")) yield;
  const type = r.u8();
  if (type !== 0) throw badSni(`entry of type ${type}, not host_name (0)`);
  while (!r.has(2, listEnd, "the length of the host_name")) yield;
  const nameEnd = r.vector(2, listEnd, "the host_name");
  if (nameEnd !== listEnd) throw badSni("list holds more than one entry");
  const from = r.pos;
  if (nameEnd === from) throw badSni("is empty");
  if (nameEnd - from > MAX_SNI) throw badSni(`of ${nameEnd - from} bytes (at most ${MAX_SNI})`);
  // Each byte is checked as it arrives: a bad one is refused before the rest of the name is there.
  for (let i = from; ; ) {
    const present = Math.min(nameEnd, r.have);
    for (; i < present; i++) {
      const c = r.b[i] ?? 0;
      if (c === 0) throw badSni(`${quote(latin1(r.b, from, present))} holds a NUL byte`);
      const bracket = (c === OPEN_BRACKET && i === from) || (c === CLOSE_BRACKET && i === nameEnd - 1);
      if (!isNameByte(c) && !bracket) throw badSni(`${quote(latin1(r.b, from, present))} holds byte ${hex(c, 2)} (letters, digits, "-", ".", "_")`);
    }
    if (i === nameEnd) break;
    yield;
  }
  r.take(nameEnd - from);
  const text = latin1(r.b, from, nameEnd);
  try {
    return normalizeServerName(text);
  } catch (e) {
    if (e instanceof PolicyError) throw badSni(`${quote(text)} is not a host name: ${e.message}`, e);
    throw e;
  }
}

/** The ALPN extension's data, `r.pos` to `end` (RFC 7301 section 3.1). */
function* readAlpn(r: Reader, end: number): Wait<string[]> {
  while (!r.has(2, end, "the length of the ALPN list")) yield;
  const listEnd = r.vector(2, end, "the ALPN list");
  if (listEnd !== end) throw malformed("the ALPN list does not fill its extension");
  if (listEnd === r.pos) throw malformed("an empty ALPN list");
  const names: string[] = [];
  while (r.pos < listEnd) {
    while (!r.has(1, listEnd, "the length of an ALPN protocol name")) yield;
    const nameEnd = r.vector(1, listEnd, "an ALPN protocol name");
    if (nameEnd === r.pos) throw malformed("an empty ALPN protocol name");
    while (!r.has(nameEnd - r.pos, nameEnd, "an ALPN protocol name")) yield;
    const at = r.take(nameEnd - r.pos);
    names.push(latin1(r.b, at, nameEnd));
  }
  return names;
}

/** The ClientHello body, from after the handshake header to `end` (RFC 8446 section 4.1.2). */
function* readHello(r: Reader, end: number): Wait<Hello> {
  while (!r.has(2, end, "legacy_version")) yield;
  const version = r.u16();
  if (version < 0x0301 || version > 0x0303) {
    throw malformed(version === 0x0300 ? "legacy_version 0x0300: SSL 3.0 is refused" : `legacy_version ${hex(version, 4)} (want 0x0301..0x0303)`);
  }
  r.skip(32, end, "random");
  while (!r.has(1, end, "the length of the session id")) yield;
  const sidEnd = r.vector(1, end, "the session id");
  if (sidEnd - r.pos > MAX_SESSION_ID) throw malformed(`a session id of ${sidEnd - r.pos} bytes (at most ${MAX_SESSION_ID})`);
  r.pos = sidEnd;
  while (!r.has(2, end, "the length of the cipher suites")) yield;
  const suitesEnd = r.vector(2, end, "the cipher suites");
  const suites = suitesEnd - r.pos;
  if (suites < 2 || suites % 2 !== 0) throw malformed(`cipher suites of ${suites} bytes (an even number, at least 2)`);
  r.pos = suitesEnd;
  while (!r.has(1, end, "the length of the compression methods")) yield;
  const methodsEnd = r.vector(1, end, "the compression methods");
  if (methodsEnd === r.pos) throw malformed("no compression method");
  while (!r.has(methodsEnd - r.pos, methodsEnd, "the compression methods")) yield;
  const methods = r.take(methodsEnd - r.pos);
  if (!r.b.subarray(methods, methodsEnd).includes(0)) throw malformed("no null compression method");
  let serverName: string | null = null;
  let alpn: string[] = [];
  if (r.pos === end) return { serverName, alpn };
  while (!r.has(2, end, "the length of the extensions")) yield;
  const extsEnd = r.vector(2, end, "the extensions");
  if (extsEnd !== end) throw malformed(`${end - extsEnd} bytes after the extensions`);
  const seen = new Set<number>();
  while (r.pos < extsEnd) {
    while (!r.has(2, extsEnd, "an extension type")) yield;
    const type = r.u16();
    while (!r.has(2, extsEnd, `the length of extension ${type}`)) yield;
    const dataEnd = r.vector(2, extsEnd, `extension ${type}`);
    if (seen.has(type)) throw malformed(`extension ${type} appears twice`);
    if (seen.has(EXT_PRE_SHARED_KEY)) throw malformed(`extension ${type} after pre_shared_key, which must be last`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) serverName = yield* readServerName(r, dataEnd);
    else if (type === EXT_ALPN) alpn = yield* readAlpn(r, dataEnd);
    r.pos = dataEnd;
  }
  return { serverName, alpn };
}

interface Hello {
  serverName: string | null;
  alpn: string[];
}

/**
 * A ClientHello read as its bytes arrive. `next` is given all the bytes so far, each time the
 * bytes of the call before and then more; it answers what parseClientHello would on them, looking
 * at each byte once: record headers are read once and their fragments copied once into the
 * handshake bytes, whose reader resumes where it waited. After it returns a hello or throws, it is
 * not called again (peek.ts keeps the answer).
 */
export class ClientHelloReader {
  /** Where the record being read starts: after the last whole record. */
  private at = 0;
  /** The end of the record being read once its header is read, -1 before. */
  private recordEnd = -1;
  /** Where the copy of its fragment stopped. */
  private copied = 0;
  /** The fragment lengths of the records read so far. */
  private declared = 0;
  /** 4 + the handshake length, or -1 while its header is not all there. */
  private total = -1;
  private readonly reader: Reader;
  private hello: Wait<Hello> | null = null;
  private read: Hello | null = null;

  /** `data`: where the handshake bytes are joined from the record fragments (RFC 8446 section 5.1); a test may pass one that counts its reads. */
  constructor(private readonly data = new GrowingBytes()) {
    this.reader = new Reader(data, HANDSHAKE_HEADER);
  }

  next(bytes: Uint8Array): TlsHello | null {
    this.reassemble(bytes);
    if (this.total < 0) return null;
    if (this.read === null) {
      this.hello ??= readHello(this.reader, this.total);
      const step = this.hello.next();
      if (!step.done) return null;
      this.read = step.value;
    }
    if (this.data.length < this.total) return null;
    return Object.freeze({ kind: "tls", serverName: this.read.serverName, alpn: Object.freeze(this.read.alpn), clientHelloLength: this.at });
  }

  /** Reads on from the record being read; every check on the records comes before the hello's. */
  private reassemble(bytes: Uint8Array): void {
    for (;;) {
      if (this.recordEnd < 0) {
        if (this.total >= 0 && this.declared >= this.total) return;
        if (this.at + RECORD_HEADER + 1 > MAX_PEEK_BYTES) throw tooLarge("a ClientHello spread over more records than fit");
        const len = recordLength(bytes, this.at);
        if (len < 0) return;
        const start = this.at + RECORD_HEADER;
        if (start + len > MAX_PEEK_BYTES) throw tooLarge(`a record ending at byte ${start + len}`);
        this.recordEnd = start + len;
        this.copied = start;
        this.declared += len;
      }
      const end = Math.min(bytes.length, this.recordEnd);
      if (end > this.copied) this.data.append(bytes.subarray(this.copied, end));
      this.copied = end;
      const data = this.data.array;
      if (this.data.length >= 1 && data[0] !== CLIENT_HELLO) throw malformed(`handshake type ${data[0]}, not client_hello (1)`);
      if (this.total < 0 && this.data.length >= HANDSHAKE_HEADER) {
        this.total = HANDSHAKE_HEADER + (((data[1] ?? 0) << 16) | ((data[2] ?? 0) << 8) | (data[3] ?? 0));
        if (this.total + RECORD_HEADER > MAX_PEEK_BYTES) throw tooLarge(`a ClientHello of ${this.total} bytes`);
      }
      if (this.total >= 0 && this.declared > this.total) throw malformed("its last record goes on after the ClientHello");
      if (end < this.recordEnd) return;
      this.at = end;
      this.recordEnd = -1;
    }
  }
}

/**
 * The ClientHello at the start of `bytes` (which start with 22), or null while more bytes are
 * needed. Throws PeekError (see the module comment).
 */
export function parseClientHello(bytes: Uint8Array): TlsHello | null {
  return new ClientHelloReader().next(bytes);
}
