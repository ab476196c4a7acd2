/**
 * The slice of the DNS message format (RFC 1035 section 4) the agent needs to resolve rule host
 * names: one A or AAAA question out, the answer to it back in. Pure code: no sockets here.
 *
 * An answer comes off the network and is treated as hostile. decodeAnswer returns only when the
 * message is a response (QR=1, opcode QUERY) to exactly the question asked (same id, one question,
 * same name compared ASCII case-insensitively per RFC 4343, same type, class IN). Every length is
 * checked against the message; compression pointers (section 4.1.4) must point before every byte
 * already read for that name, so they can neither loop nor point forward; names are at most 255
 * octets. A CNAME chain is followed inside the answer section only, at most MAX_CHAIN links and
 * never through the same name twice; only records of the asked type owned by the chain's last name
 * count. Anything else malformed is PolicyError policy_dns_bad_answer, never another exception.
 */
import { quote } from "../errors.ts";
import { ipFromBytes, ipToBytes, type IpAddress } from "../policy/address.ts";
import { PolicyError } from "../policy/errors.ts";

export type QueryType = "A" | "AAAA";

export interface Question {
  readonly id: number;
  readonly name: string;
  readonly type: QueryType;
}

export interface DecodedAnswer {
  /** The header's RCODE (0 no error, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED, ...). */
  readonly rcode: number;
  /** TC=1: the message was cut to fit; nothing past the question is read (ask again over TCP). */
  readonly truncated: boolean;
  readonly addresses: readonly { readonly address: IpAddress; readonly ttl: number }[];
  /**
   * Seconds: the least TTL of the records used (the chain's CNAMEs and the addresses). With no
   * address (NXDOMAIN, NODATA): the negative TTL of RFC 2308 section 5, min(SOA TTL, SOA MINIMUM),
   * also bounded by the chain's CNAMEs, when the authority section has the SOA of an enclosing
   * zone; null otherwise.
   */
  readonly ttl: number | null;
}

export const RCODE = Object.freeze({ NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 });

/** CNAME links followed at most (a resolver following more is being led in circles). */
export const MAX_CHAIN = 8;

const TYPE_CODE: Readonly<Record<QueryType, number>> = { A: 1, AAAA: 28 };
const RDATA_LENGTH: Readonly<Record<QueryType, number>> = { A: 4, AAAA: 16 };
const T_CNAME = 5;
const T_SOA = 6;
const CLASS_IN = 1;
const HEADER = 12;
const MAX_NAME = 255;
const MAX_LABEL = 63;
/** Pointers followed per name; the backwards rule already bounds them, this bounds the work. */
const MAX_POINTERS = 64;

function bad(why: string): PolicyError {
  return new PolicyError("policy_dns_bad_answer", `dns: ${why}`);
}

/** The labels of a host name in query form, checked against RFC 1035 section 2.3.4 limits. */
function labelsOf(name: string): string[] {
  const bare = name.endsWith(".") ? name.slice(0, -1) : name;
  const labels = bare.split(".");
  const badHost = (why: string) => new PolicyError("policy_bad_host", `dns: cannot ask for ${quote(name)}: ${why}`);
  if (bare === "") throw badHost("empty name");
  if (bare.length + 2 > MAX_NAME) throw badHost("longer than 255 octets");
  for (const l of labels) {
    if (l === "") throw badHost("empty label");
    if (l.length > MAX_LABEL) throw badHost("a label longer than 63 octets");
    if (!/^[\x21-\x7e]+$/.test(l)) throw badHost("not printable ASCII (use the A-label form of a name)");
  }
  return labels;
}

/** Wire-independent form of a name for comparisons: lowercase ASCII, "." between labels, bytes that are not letters, digits or "-_" escaped as \DDD. */
function keyOfLabel(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) {
    const lower = b >= 65 && b <= 90 ? b + 32 : b;
    const plain = (lower >= 97 && lower <= 122) || (lower >= 48 && lower <= 57) || lower === 45 || lower === 95;
    out += plain ? String.fromCharCode(lower) : `\\${lower.toString().padStart(3, "0")}`;
  }
  return out;
}

function keyOfName(name: string): string {
  return labelsOf(name)
    .map((l) => keyOfLabel(Uint8Array.from(l, (c) => c.charCodeAt(0))))
    .join(".");
}

/** Uncompressed wire form of a name; "" or "." is the root. */
function nameBytes(name: string): number[] {
  const out: number[] = [];
  if (name !== "" && name !== ".") {
    for (const l of labelsOf(name)) out.push(l.length, ...Array.from(l, (c) => c.charCodeAt(0)));
  }
  out.push(0);
  return out;
}

const u16 = (v: number) => [(v >> 8) & 255, v & 255];
const u32 = (v: number) => [...u16(Math.floor(v / 65536) & 0xffff), ...u16(v & 0xffff)];

function message(id: number, flags: number, q: { name: string; type: QueryType }, sections: readonly (readonly number[][])[]): Uint8Array {
  const counts = [1, ...sections.map((s) => s.length)];
  while (counts.length < 4) counts.push(0);
  const question = [...nameBytes(q.name), ...u16(TYPE_CODE[q.type]), ...u16(CLASS_IN)];
  return Uint8Array.from([...u16(id & 0xffff), ...u16(flags), ...counts.flatMap(u16), ...question, ...sections.flat(2)]);
}

/** A query with RD set and one question of class IN (RFC 1035 section 4.1). Throws policy_bad_host for a name that cannot be asked. */
export function encodeQuery(id: number, name: string, type: QueryType): Uint8Array {
  labelsOf(name);
  return message(id, 0x0100, { name, type }, []);
}

/** A record for encodeResponse; `rdata` gives any type's data as is (for crafting odd answers). */
export type WireRecord = { readonly name: string; readonly ttl: number } & (
  | { readonly type: QueryType; readonly address: IpAddress }
  | { readonly type: "CNAME"; readonly target: string }
  | { readonly type: "SOA"; readonly minimum: number }
  | { readonly type: number; readonly rdata: Uint8Array }
);

function recordBytes(r: WireRecord): number[] {
  let type: number;
  let data: number[];
  if ("address" in r) {
    type = TYPE_CODE[r.type];
    data = Array.from(ipToBytes(r.address));
  } else if ("target" in r) {
    [type, data] = [T_CNAME, nameBytes(r.target)];
  } else if ("minimum" in r) {
    const zone = r.name === "" || r.name === "." ? "" : `.${r.name}`;
    [type, data] = [T_SOA, [...nameBytes(`ns${zone}`), ...nameBytes(`hostmaster${zone}`), ...u32(1), ...u32(3600), ...u32(600), ...u32(86400), ...u32(r.minimum)]];
  } else {
    [type, data] = [r.type, Array.from(r.rdata)];
  }
  return [...nameBytes(r.name), ...u16(type), ...u16(CLASS_IN), ...u32(r.ttl), ...u16(data.length), ...data];
}

/**
 * The responder's side, for the DNS servers tests run (DESIGN.md section 3): a response (QR, RD,
 * RA set) to `q` with the given records, uncompressed.
 */
export function encodeResponse(
  q: Question,
  r: { readonly rcode?: number; readonly truncated?: boolean; readonly answers?: readonly WireRecord[]; readonly authority?: readonly WireRecord[] },
): Uint8Array {
  const flags = 0x8180 | (r.truncated === true ? 0x0200 : 0) | ((r.rcode ?? 0) & 0xf);
  return message(q.id, flags, q, [(r.answers ?? []).map(recordBytes), (r.authority ?? []).map(recordBytes)]);
}

class Reader {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(at: number, n: number, what: string): void {
    if (at + n > this.bytes.length) throw bad(`message ends inside ${what}`);
  }

  u16(at: number, what: string): number {
    this.need(at, 2, what);
    return this.view.getUint16(at);
  }

  /** A TTL: 32 bits, a value with the top bit set read as 0 (RFC 2181 section 8). */
  ttl(at: number): number {
    this.need(at, 4, "a record");
    const v = this.view.getUint32(at);
    return v >= 0x80000000 ? 0 : v;
  }

  /** The name at `at` as a comparison key, and the offset just after its in-place part. */
  name(at: number): { key: string; end: number } {
    const labels: string[] = [];
    let pos = at;
    let lowest = at;
    let end = -1;
    let octets = 1;
    let pointers = 0;
    for (;;) {
      this.need(pos, 1, "a name");
      const len = this.bytes[pos]!;
      if (len === 0) {
        if (end < 0) end = pos + 1;
        break;
      }
      const kind = len & 0xc0;
      if (kind === 0xc0) {
        const target = this.u16(pos, "a name") & 0x3fff;
        if (end < 0) end = pos + 2;
        if (target >= lowest) throw bad("a compression pointer that does not point backwards");
        if (++pointers > MAX_POINTERS) throw bad("too many compression pointers in a name");
        lowest = target;
        pos = target;
        continue;
      }
      if (kind !== 0) throw bad("a label of an unsupported type");
      this.need(pos + 1, len, "a name");
      octets += len + 1;
      if (octets > MAX_NAME) throw bad("a name longer than 255 octets");
      labels.push(keyOfLabel(this.bytes.subarray(pos + 1, pos + 1 + len)));
      pos += 1 + len;
    }
    return { key: labels.join("."), end };
  }
}

interface ResourceRecord {
  readonly owner: string;
  readonly type: number;
  readonly klass: number;
  readonly ttl: number;
  readonly rdata: number;
  readonly rdlength: number;
}

function readRecord(r: Reader, at: number): { rec: ResourceRecord; end: number } {
  const owner = r.name(at);
  const p = owner.end;
  r.need(p, 10, "a record");
  const rec = { owner: owner.key, type: r.u16(p, "a record"), klass: r.u16(p + 2, "a record"), ttl: r.ttl(p + 4), rdlength: r.u16(p + 8, "a record"), rdata: p + 10 };
  r.need(rec.rdata, rec.rdlength, "a record's data");
  return { rec, end: rec.rdata + rec.rdlength };
}

/** The name that fills a record's data exactly (CNAME target, SOA MNAME/RNAME). */
function nameInRdata(r: Reader, at: number, limit: number, what: string): { key: string; end: number } {
  const n = r.name(at);
  if (n.end > limit) throw bad(`${what} runs past its record`);
  return n;
}

/** A suffix test on keys: `zone` is `name` or encloses it. */
function encloses(zone: string, name: string): boolean {
  return zone === "" || zone === name || name.endsWith(`.${zone}`);
}

/** RFC 2308 section 5: min(SOA TTL, MINIMUM) of an SOA in `authority` whose zone encloses `name`, or null. */
function negativeTtl(r: Reader, authority: readonly ResourceRecord[], name: string): number | null {
  let best: number | null = null;
  for (const rec of authority) {
    if (rec.type !== T_SOA || rec.klass !== CLASS_IN || !encloses(rec.owner, name)) continue;
    const limit = rec.rdata + rec.rdlength;
    const mname = nameInRdata(r, rec.rdata, limit, "an soa");
    const rname = nameInRdata(r, mname.end, limit, "an soa");
    if (rname.end + 20 !== limit) throw bad("an soa record of the wrong length");
    const ttl = Math.min(rec.ttl, r.ttl(rname.end + 16));
    best = best === null ? ttl : Math.min(best, ttl);
  }
  return best;
}

/** Follows CNAMEs from `start` through the answer section; the last name and the least CNAME TTL. */
function followChain(r: Reader, answers: readonly ResourceRecord[], start: string): { name: string; ttl: number | null } {
  let name = start;
  let ttl: number | null = null;
  const seen = new Set([name]);
  for (;;) {
    const links = answers.filter((a) => a.type === T_CNAME && a.klass === CLASS_IN && a.owner === name);
    if (links.length === 0) return { name, ttl };
    if (links.length > 1) throw bad(`several cnames for one name in the answer to ${quote(start)}`);
    const link = links[0]!;
    const target = nameInRdata(r, link.rdata, link.rdata + link.rdlength, "a cname");
    if (target.end !== link.rdata + link.rdlength) throw bad("a cname record of the wrong length");
    if (seen.has(target.key)) throw bad(`a cname loop in the answer to ${quote(start)}`);
    if (seen.size > MAX_CHAIN) throw bad(`a cname chain longer than ${MAX_CHAIN} in the answer to ${quote(start)}`);
    seen.add(target.key);
    name = target.key;
    ttl = ttl === null ? link.ttl : Math.min(ttl, link.ttl);
  }
}

/** Checks `bytes` answers `q` and returns what it says; throws PolicyError policy_dns_bad_answer otherwise. */
export function decodeAnswer(bytes: Uint8Array, q: Question): DecodedAnswer {
  const r = new Reader(bytes);
  if (bytes.length < HEADER) throw bad("message shorter than a header");
  const id = r.u16(0, "the header");
  const flags = r.u16(2, "the header");
  if ((flags & 0x8000) === 0) throw bad("not a response (qr=0)");
  if (id !== (q.id & 0xffff)) throw bad(`response id ${id} does not match query id ${q.id & 0xffff}`);
  if (((flags >> 11) & 0xf) !== 0) throw bad(`response opcode ${(flags >> 11) & 0xf} is not query`);
  const rcode = flags & 0xf;
  const truncated = (flags & 0x0200) !== 0;
  const counts = [r.u16(4, "the header"), r.u16(6, "the header"), r.u16(8, "the header"), r.u16(10, "the header")] as const;
  if (counts[0] !== 1) throw bad(`response has ${counts[0]} questions, not the one asked`);
  const qname = r.name(HEADER);
  const asked = keyOfName(q.name);
  if (qname.key !== asked) throw bad(`response is for ${quote(qname.key)}, not ${quote(asked)}`);
  const qtype = r.u16(qname.end, "the question");
  const qclass = r.u16(qname.end + 2, "the question");
  if (qtype !== TYPE_CODE[q.type] || qclass !== CLASS_IN) throw bad(`response question type ${qtype} class ${qclass} is not ${q.type} IN`);
  if (truncated || (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN)) {
    return Object.freeze({ rcode, truncated, addresses: Object.freeze([]), ttl: null });
  }

  const sections: ResourceRecord[][] = [[], [], []];
  let at = qname.end + 4;
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const { rec, end } = readRecord(r, at);
      sections[s]!.push(rec);
      at = end;
    }
  }
  const [answers, authority] = sections as [ResourceRecord[], ResourceRecord[]];
  const chain = followChain(r, answers, asked);
  const want = TYPE_CODE[q.type];
  const addresses: { address: IpAddress; ttl: number }[] = [];
  for (const a of answers) {
    if (a.klass !== CLASS_IN || (a.type !== TYPE_CODE.A && a.type !== TYPE_CODE.AAAA)) continue;
    const size = a.type === TYPE_CODE.A ? RDATA_LENGTH.A : RDATA_LENGTH.AAAA;
    if (a.rdlength !== size) throw bad(`an address record with ${a.rdlength} bytes of data, not ${size}`);
    if (a.type !== want || a.owner !== chain.name || rcode !== RCODE.NOERROR) continue;
    addresses.push(Object.freeze({ address: ipFromBytes(bytes.slice(a.rdata, a.rdata + size)), ttl: a.ttl }));
  }
  let ttl: number | null;
  if (addresses.length > 0) {
    ttl = addresses.reduce((m, a) => Math.min(m, a.ttl), chain.ttl ?? Infinity);
  } else {
    const neg = negativeTtl(r, authority, chain.name);
    ttl = neg === null ? null : Math.min(neg, chain.ttl ?? Infinity);
  }
  return Object.freeze({ rcode, truncated, addresses: Object.freeze(addresses), ttl });
}
