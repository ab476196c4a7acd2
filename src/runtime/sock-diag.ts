/**
 * The socket cookie of one TCP connection, asked of the kernel (sock_diag(7), inet_diag): how the
 * egress listener finds a redirected connection's record, which connect4/6 stored under the client
 * socket's cookie (bpf_get_socket_cookie). Two layers (../shared/STYLE.md, point 10): the raw
 * symbol table through bun:ffi, and `SockDiag`, which throws `SockDiagError` carrying errno and
 * naming the call and the connection.
 *
 * Guaranteed:
 * - one exact lookup (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP) by the socket's own end and its
 *   peer; the answer is used only when it carries the request's sequence number, names the same
 *   addresses and ports, and is not a listener (the kernel falls back to a listening socket bound
 *   to that address and port when the connection is gone): anything else is "no such socket";
 * - a socket in TIME_WAIT keeps the cookie of the socket it was, so a client that already closed
 *   is still found until its TIME_WAIT ends; one that reset its connection is gone (null);
 * - IPv4-mapped IPv6 addresses are IPv4 (parseIp maps them): a dual-stack client connected to an
 *   IPv4 address is asked for as IPv4, where the kernel keeps its connection;
 * - the netlink socket is opened once (close-on-exec) and reused; requests are synchronous: the
 *   kernel answers inside sendto(2) (netlink_unicast_kernel), so the answer is read without
 *   blocking, and a missing one is an error rather than a wait on the event loop;
 * - the lookups are in the calling process's network namespace.
 */
import { dlopen, FFIType } from "bun:ffi";
import { TidegateError } from "../errors.ts";
import { ipToBytes, type IpAddress } from "../policy/address.ts";
import { errno, Errno, errnoName } from "./libc.ts";

export type SockDiagErrorCode = "sock_diag_unavailable" | "sock_diag_failed" | "sock_diag_bad_argument";

export class SockDiagError extends TidegateError<SockDiagErrorCode> {
  /** errno of the failed call, or the kernel's answer; 0 when no call failed. */
  readonly errno: number;

  constructor(code: SockDiagErrorCode, message: string, errnoValue = 0, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errnoValue;
  }
}

/** One end of a TCP connection. */
export interface Endpoint {
  readonly address: IpAddress;
  readonly port: number;
}

const { i32, i64, u32, u64, ptr: P } = FFIType;

const SYMBOLS = {
  socket: { args: [i32, i32, i32], returns: i32 },
  sendto: { args: [i32, P, u64, i32, P, u32], returns: i64 },
  recv: { args: [i32, P, u64, i32], returns: i64 },
  close: { args: [i32], returns: i32 },
} as const;

type Symbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];
let opened: Symbols | null = null;

/** The raw symbol table; `sock_diag_unavailable` off 64-bit glibc Linux. */
export function sockDiagSymbols(): Symbols {
  if (opened !== null) return opened;
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    throw new SockDiagError("sock_diag_unavailable", `sock_diag: needs 64-bit Linux (this is ${process.platform}/${process.arch})`);
  }
  try {
    opened = dlopen("libc.so.6", SYMBOLS).symbols;
  } catch (e) {
    throw new SockDiagError("sock_diag_unavailable", "sock_diag: cannot open libc.so.6 (Linux with glibc only)", 0, { cause: e });
  }
  return opened;
}

const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const IPPROTO_TCP = 6;
const MSG_DONTWAIT = 0x40;
const NLMSG_ERROR = 2;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const TCP_LISTEN = 10;
/** Every TCP state but LISTEN (1 << state for ESTABLISHED 1 .. NEW_SYN_RECV 12). */
const STATES = 0x1fff & ~(1 << TCP_LISTEN);
const NLMSG_HDR = 16;
/**
 * struct inet_diag_req_v2: family, protocol, ext, pad, states (u32), then struct inet_diag_sockid
 * (48 bytes: sport, dport in network order, src[4], dst[4], if, cookie[2] low word first).
 */
const REQ_V2 = 56;
/** struct inet_diag_msg: family, state, timer, retrans, the sockid, then five u32. */
const DIAG_MSG = 72;
const SOCKADDR_NL = 12;
const ANSWER_BYTES = 8192;

/** The kernel's netlink address: family AF_NETLINK, port id 0. */
const KERNEL = (() => {
  const sa = new Uint8Array(SOCKADDR_NL);
  new DataView(sa.buffer).setUint16(0, AF_NETLINK, true);
  return sa;
})();

function text(e: Endpoint): string {
  return e.address.family === 6 ? `[${e.address.text}]:${e.port}` : `${e.address.text}:${e.port}`;
}

/** Writes sport, dport, src and dst of a sockid at `off`; addresses as 4 or 16 network-order bytes. */
function putSockId(out: Uint8Array, v: DataView, off: number, self: Endpoint, peer: Endpoint): void {
  v.setUint16(off, self.port, false);
  v.setUint16(off + 2, peer.port, false);
  putAddress(out, v, off + 4, self.address);
  putAddress(out, v, off + 20, peer.address);
  // idiag_if 0: any device. idiag_cookie INET_DIAG_NOCOOKIE: the kernel checks no cookie.
  v.setUint32(off + 36, 0, true);
  v.setUint32(off + 40, 0xffffffff, true);
  v.setUint32(off + 44, 0xffffffff, true);
}

/** An address in network order at `off`: an IPv4 one without a bigint per byte (it fits a number). */
function putAddress(out: Uint8Array, v: DataView, off: number, a: IpAddress): void {
  if (a.family === 4) v.setUint32(off, Number(a.value), false);
  else out.set(ipToBytes(a), off);
}

function sameBytes(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

/** The connection, for messages. */
function what(self: Endpoint, peer: Endpoint): string {
  return `tcp ${text(self)} -> ${text(peer)}`;
}

function checkEndpoint(e: Endpoint, what: string): void {
  if (!Number.isInteger(e.port) || e.port < 1 || e.port > 0xffff) {
    throw new SockDiagError("sock_diag_bad_argument", `sock_diag: ${what} port ${e.port} is not 1..65535`);
  }
}

/** Where the request's inet_diag_sockid starts. */
const REQ_ID = NLMSG_HDR + 8;

export class SockDiag {
  private seq = 0;
  // One request and one answer buffer, each owning its memory outside the collector's heap,
  // reused by every lookup (they are synchronous).
  private readonly req = new Uint8Array(new ArrayBuffer(NLMSG_HDR + REQ_V2));
  private readonly reqView = new DataView(this.req.buffer);
  private readonly answer = new Uint8Array(new ArrayBuffer(ANSWER_BYTES));
  private readonly answerView = new DataView(this.answer.buffer);

  private constructor(private fd: number) {
    const v = this.reqView;
    v.setUint32(0, this.req.length, true);
    v.setUint16(4, SOCK_DIAG_BY_FAMILY, true);
    v.setUint16(6, NLM_F_REQUEST, true);
    this.req[NLMSG_HDR + 1] = IPPROTO_TCP;
    v.setUint32(NLMSG_HDR + 4, STATES, true);
  }

  /** Opens the NETLINK_SOCK_DIAG socket; `sock_diag_unavailable` when the kernel has none. */
  static open(): SockDiag {
    const fd = sockDiagSymbols().socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
      const e = errno();
      throw new SockDiagError("sock_diag_unavailable", `sock_diag: socket(AF_NETLINK, NETLINK_SOCK_DIAG) failed: ${errnoName(e)}`, e);
    }
    return new SockDiag(fd);
  }

  /**
   * The cookie of the TCP socket whose own end is `self` and whose peer is `peer` (for a redirected
   * connection: self = the client's address and port as the listener sees its peer, peer = the
   * listener's address and port), or null when there is no such socket.
   */
  cookie(self: Endpoint, peer: Endpoint): bigint | null {
    const key = new Uint8Array(8);
    if (!this.cookieInto(self, peer, key)) return null;
    return new DataView(key.buffer).getBigUint64(0, true);
  }

  /**
   * cookie(), written into `key` (8 bytes) as the little-endian u64 a BPF map keyed by cookie
   * takes; false (and `key` untouched) when there is no such socket. Makes no object per call.
   */
  cookieInto(self: Endpoint, peer: Endpoint, key: Uint8Array): boolean {
    if (this.fd < 0) throw new SockDiagError("sock_diag_bad_argument", "sock_diag: lookup on a closed socket");
    if (key.length !== 8) throw new SockDiagError("sock_diag_bad_argument", `sock_diag: a cookie key is 8 bytes, not ${key.length}`);
    checkEndpoint(self, "socket");
    checkEndpoint(peer, "peer");
    if (self.address.family !== peer.address.family) {
      throw new SockDiagError("sock_diag_bad_argument", `sock_diag: ${text(self)} and ${text(peer)} are not one connection (IPv4 and IPv6)`);
    }
    const req = this.req;
    this.seq = (this.seq + 1) >>> 0;
    const seq = this.seq;
    this.reqView.setUint32(8, seq, true);
    req[NLMSG_HDR] = self.address.family === 4 ? AF_INET : AF_INET6;
    req.fill(0, REQ_ID, REQ_ID + 36);
    putSockId(req, this.reqView, REQ_ID, self, peer);
    const lib = sockDiagSymbols();
    for (;;) {
      const sent = Number(lib.sendto(this.fd, req, req.length, 0, KERNEL, SOCKADDR_NL));
      if (sent === req.length) break;
      const e = sent < 0 ? errno() : 0;
      if (e === Errno.EINTR) continue;
      throw new SockDiagError("sock_diag_failed", `sock_diag: sendto(SOCK_DIAG_BY_FAMILY ${what(self, peer)}) failed: ${sent < 0 ? errnoName(e) : `sent ${sent} of ${req.length} bytes`}`, e);
    }
    // Answers to earlier requests (one whose reader threw) are skipped by sequence number.
    for (;;) {
      const n = Number(lib.recv(this.fd, this.answer, this.answer.length, MSG_DONTWAIT));
      if (n < 0) {
        const e = errno();
        if (e === Errno.EINTR) continue;
        if (e === Errno.EAGAIN) throw new SockDiagError("sock_diag_failed", `sock_diag: no answer to SOCK_DIAG_BY_FAMILY ${what(self, peer)}`, e);
        throw new SockDiagError("sock_diag_failed", `sock_diag: recv(SOCK_DIAG_BY_FAMILY ${what(self, peer)}) failed: ${errnoName(e)}`, e);
      }
      const found = this.read(n, seq, self, peer);
      if (found < 0) continue;
      if (found === 0) return false;
      key.set(this.answer.subarray(found, found + 8));
      return true;
    }
  }

  /**
   * The answer to `seq` among the first `n` bytes of the answer buffer: the offset of its cookie
   * (the socket's), 0 (no such socket), or -1 (not ours).
   */
  private read(n: number, seq: number, self: Endpoint, peer: Endpoint): number {
    const bytes = this.answer;
    const v = this.answerView;
    for (let off = 0; off + NLMSG_HDR <= n; ) {
      const len = v.getUint32(off, true);
      if (len < NLMSG_HDR || off + len > n) {
        throw new SockDiagError("sock_diag_failed", `sock_diag: malformed answer to SOCK_DIAG_BY_FAMILY ${what(self, peer)} (message of ${len} bytes at ${off} in ${n})`);
      }
      const type = v.getUint16(off + 4, true);
      if (v.getUint32(off + 8, true) === seq) {
        const body = off + NLMSG_HDR;
        if (type === NLMSG_ERROR) {
          const err = len >= NLMSG_HDR + 4 ? -v.getInt32(body, true) : 0;
          if (err === Errno.ENOENT) return 0;
          throw new SockDiagError("sock_diag_failed", `sock_diag: SOCK_DIAG_BY_FAMILY ${what(self, peer)} failed: ${errnoName(err)}`, err);
        }
        if (type !== SOCK_DIAG_BY_FAMILY || len < NLMSG_HDR + DIAG_MSG) {
          throw new SockDiagError("sock_diag_failed", `sock_diag: unexpected answer to SOCK_DIAG_BY_FAMILY ${what(self, peer)} (type ${type}, ${len} bytes)`);
        }
        const family = bytes[body]!;
        const state = bytes[body + 1]!;
        if (family !== AF_INET && family !== AF_INET6) {
          throw new SockDiagError("sock_diag_failed", `sock_diag: answer to SOCK_DIAG_BY_FAMILY ${what(self, peer)} has address family ${family}`);
        }
        // The same ports and addresses as asked. An IPv6 socket connected to an IPv4 address
        // answers an IPv4 question with its v4-mapped addresses (::ffff:a.b.c.d).
        const id = body + 4;
        const matches =
          state !== TCP_LISTEN &&
          sameBytes(bytes, id, this.req, REQ_ID, 4) &&
          this.sameAddress(family, id + 4, REQ_ID + 4) &&
          this.sameAddress(family, id + 20, REQ_ID + 20);
        return matches ? id + 40 : 0;
      }
      off += (len + 3) & ~3;
    }
    return -1;
  }

  /** Whether the answer's address (of `family`) at `at` is the request's at `asked`. */
  private sameAddress(family: number, at: number, asked: number): boolean {
    const askedFamily = this.req[NLMSG_HDR];
    if (family === askedFamily) return sameBytes(this.answer, at, this.req, asked, family === AF_INET ? 4 : 16);
    if (askedFamily !== AF_INET || family !== AF_INET6) return false;
    for (let i = 0; i < 10; i++) if (this.answer[at + i] !== 0) return false;
    return this.answer[at + 10] === 0xff && this.answer[at + 11] === 0xff && sameBytes(this.answer, at + 12, this.req, asked, 4);
  }

  /** Closes the netlink socket; later lookups throw. Closing twice is allowed. */
  close(): void {
    if (this.fd < 0) return;
    sockDiagSymbols().close(this.fd);
    this.fd = -1;
  }
}
