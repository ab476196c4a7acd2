/**
 * A stub resolver for the agent's own use (DESIGN.md section 3, "Names"): it asks the servers of
 * the `dns:` setting (or /etc/resolv.conf's) for one A or AAAA record set and reports the TTL.
 *
 * Guarantees against off-path spoofing (RFC 5452): every query has a random 16-bit id from
 * crypto.getRandomValues and its own new socket (a random source port); only a datagram from the
 * server's own address and port that decodes as the answer to that exact question is accepted, and
 * any other is dropped while the wait goes on, so a forged packet cannot end the attempt. A
 * truncated (TC=1) answer is asked again of the same server over TCP (RFC 7766, 2-byte length
 * prefix). Every socket is closed when its attempt ends: answer, timeout, error or abort.
 */
import { createSocket } from "node:dgram";
import { connect } from "node:net";
import { quote } from "../errors.ts";
import { parseIp, type IpAddress } from "../policy/address.ts";
import { PolicyError } from "../policy/errors.ts";
import { decodeAnswer, encodeQuery, RCODE, type DecodedAnswer, type Question, type QueryType } from "./dns-wire.ts";

export interface DnsServer {
  /** An IP literal. */
  readonly host: string;
  readonly port: number;
}

/** `ttl` in seconds: the answer's, or for NXDOMAIN/NODATA the SOA's negative TTL (30 s without one). */
export type LookupResult = { readonly addresses: readonly IpAddress[]; readonly ttl: number };

export type DnsLookup = (name: string, type: QueryType, signal?: AbortSignal) => Promise<LookupResult>;

export interface DnsLookupOptions {
  /** Per attempt (one UDP exchange, and the TCP one after TC=1), default 2000. */
  readonly timeoutMs?: number;
  /** Rounds over the server list, default 2. */
  readonly attempts?: number;
}

/** Seconds an empty answer stands for when the server gave no SOA to say. */
export const DEFAULT_NEGATIVE_TTL = 30;

const RCODE_NAMES: Readonly<Record<number, string>> = { 1: "formerr", 2: "servfail", 4: "notimp", 5: "refused" };

type Attempt = { readonly answer: DecodedAnswer } | { readonly failure: string };

export function formatServer(s: DnsServer): string {
  return s.host.includes(":") ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

function randomId(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0]!;
}

function errnoText(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : e instanceof Error ? e.message : String(e);
}

/**
 * Runs `start` (which opens a socket and returns its closer) until it settles, `timeoutMs` passes
 * (a "timeout" failure) or `signal` aborts (rejects with its reason); the closer runs exactly once.
 */
function attempt(timeoutMs: number, signal: AbortSignal | undefined, start: (settle: (a: Attempt) => void) => () => void): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    let settled = false;
    let close: (() => void) | null = null;
    const end = (finish: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      close?.();
      finish();
    };
    const onAbort = () => end(() => reject(signal?.reason));
    const timer = setTimeout(() => end(() => resolve({ failure: "timeout" })), timeoutMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const closer = start((a) => end(() => resolve(a)));
      if (settled) closer();
      else close = closer;
    } catch (e) {
      end(() => resolve({ failure: errnoText(e) }));
    }
  });
}

function sameAddress(text: string, ip: IpAddress): boolean {
  try {
    return parseIp(text).text === ip.text;
  } catch {
    return false;
  }
}

function overUdp(server: DnsServer, ip: IpAddress, q: Question, timeoutMs: number, signal?: AbortSignal): Promise<Attempt> {
  return attempt(timeoutMs, signal, (settle) => {
    const socket = createSocket(ip.family === 4 ? "udp4" : "udp6");
    socket.on("message", (msg, from) => {
      if (from.port !== server.port || !sameAddress(from.address, ip)) return;
      try {
        settle({ answer: decodeAnswer(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), q) });
      } catch (e) {
        if (!(e instanceof PolicyError)) throw e;
      }
    });
    socket.on("error", (e) => settle({ failure: errnoText(e) }));
    socket.send(encodeQuery(q.id, q.name, q.type), server.port, ip.text, (e) => {
      if (e) settle({ failure: errnoText(e) });
    });
    return () => {
      try {
        socket.close();
      } catch {
        // already closed
      }
    };
  });
}

/** TCP: the server is the peer of a connection we opened, so a bad answer fails the attempt. */
function overTcp(server: DnsServer, ip: IpAddress, q: Question, timeoutMs: number, signal?: AbortSignal): Promise<Attempt> {
  return attempt(timeoutMs, signal, (settle) => {
    const query = encodeQuery(q.id, q.name, q.type);
    const socket = connect({ host: ip.text, port: server.port });
    let got = new Uint8Array(0);
    socket.on("connect", () => {
      const framed = new Uint8Array(2 + query.length);
      framed.set([query.length >> 8, query.length & 255]);
      framed.set(query, 2);
      socket.write(framed);
    });
    socket.on("data", (chunk: Uint8Array) => {
      const next = new Uint8Array(got.length + chunk.length);
      next.set(got);
      next.set(chunk, got.length);
      got = next;
      if (got.length < 2) return;
      const length = (got[0]! << 8) | got[1]!;
      if (got.length < 2 + length) return;
      try {
        const answer = decodeAnswer(got.subarray(2, 2 + length), q);
        settle(answer.truncated ? { failure: "truncated over tcp" } : { answer });
      } catch (e) {
        if (!(e instanceof PolicyError)) throw e;
        settle({ failure: `bad answer over tcp (${e.message.replace(/^dns: /, "")})` });
      }
    });
    socket.on("error", (e) => settle({ failure: `tcp ${errnoText(e)}` }));
    socket.on("close", () => settle({ failure: "tcp closed before an answer" }));
    return () => socket.destroy();
  });
}

async function ask(server: DnsServer, ip: IpAddress, name: string, type: QueryType, timeoutMs: number, signal?: AbortSignal): Promise<Attempt> {
  let got = await overUdp(server, ip, { id: randomId(), name, type }, timeoutMs, signal);
  if ("answer" in got && got.answer.truncated) got = await overTcp(server, ip, { id: randomId(), name, type }, timeoutMs, signal);
  if ("failure" in got) return got;
  const rcode = got.answer.rcode;
  if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) return { failure: RCODE_NAMES[rcode] ?? `rcode ${rcode}` };
  return got;
}

function checkServer(s: DnsServer): IpAddress {
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
    throw new PolicyError("policy_bad_port", `dns: server ${quote(s.host)} has port ${s.port}, not 1-65535`);
  }
  return parseIp(s.host);
}

/**
 * A lookup over `servers`, tried in order, `attempts` rounds. NXDOMAIN and NODATA resolve with no
 * address; SERVFAIL, REFUSED, other errors and timeouts move on to the next server (then round);
 * when every try failed it rejects with PolicyError policy_dns_failed naming each server and its
 * last failure. An aborted `signal` rejects with its reason. Throws at once for a server that is
 * not an IP literal (policy_bad_address) or has a bad port (policy_bad_port); a name that cannot
 * be asked rejects with policy_bad_host before any packet.
 */
export function createDnsLookup(servers: readonly DnsServer[], opts: DnsLookupOptions = {}): DnsLookup {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const attempts = Math.max(1, opts.attempts ?? 2);
  const list = servers.map((s) => ({ server: Object.freeze({ host: s.host, port: s.port }), ip: checkServer(s) }));
  return async (name, type, signal) => {
    encodeQuery(0, name, type);
    if (list.length === 0) throw new PolicyError("policy_dns_failed", `dns: ${quote(name)}: no dns servers configured`);
    const last = new Map<DnsServer, string>();
    for (let round = 0; round < attempts; round++) {
      for (const { server, ip } of list) {
        const got = await ask(server, ip, name, type, timeoutMs, signal);
        if ("failure" in got) {
          last.set(server, got.failure);
          continue;
        }
        const addresses = Object.freeze(got.answer.addresses.map((a) => a.address));
        return Object.freeze({ addresses, ttl: got.answer.ttl ?? (addresses.length > 0 ? 0 : DEFAULT_NEGATIVE_TTL) });
      }
    }
    const tried = [...last].map(([s, why]) => `${formatServer(s)} (${why})`).join(", ");
    throw new PolicyError("policy_dns_failed", `dns: ${quote(name)}: no answer from ${tried}`);
  };
}
