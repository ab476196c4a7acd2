/**
 * The far end of the mTLS end-to-end test (mtls.test.ts): a backend that reads the PROXY protocol
 * v2 header itself, with a decoder written here from haproxy's proxy-protocol.txt (section 2.2),
 * independent of src/proxy/proxy-v2.ts, so the test checks the product's bytes against the spec;
 * and a TLS client that dials an inbound listener the way an outsider would.
 */
import type { Socket } from "bun";

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

export interface Tlv {
  readonly type: number;
  readonly value: Uint8Array;
}

export interface ProxyHeader {
  readonly verCmd: number;
  readonly family: number;
  readonly src: { readonly address: string; readonly port: number };
  readonly dst: { readonly address: string; readonly port: number };
  /** In the order they came. */
  readonly tlvs: readonly Tlv[];
  /** PP2_TYPE_UNIQUE_ID (0x05) as lowercase hex. */
  readonly uniqueId: string | null;
  /** 0xE0 (PP2_TYPE_MIN_CUSTOM), UTF-8. */
  readonly spiffeId: string | null;
  /** PP2_TYPE_SSL (0x20): client bits, verify result, sub-TLVs. */
  readonly ssl: { readonly client: number; readonly verify: number; readonly subs: readonly Tlv[] } | null;
}

const be16 = (b: Uint8Array, i: number) => (b[i]! << 8) | b[i + 1]!;
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

function parseTlvs(b: Uint8Array, what: string): Tlv[] {
  const out: Tlv[] = [];
  let i = 0;
  while (i < b.length) {
    if (i + 3 > b.length) throw new Error(`proxy v2: ${what}: a TLV header cut at byte ${i}`);
    const len = be16(b, i + 1);
    if (i + 3 + len > b.length) throw new Error(`proxy v2: ${what}: TLV 0x${b[i]!.toString(16)} of ${len} bytes overruns the header`);
    out.push({ type: b[i]!, value: b.slice(i + 3, i + 3 + len) });
    i += 3 + len;
  }
  return out;
}

function ipv6(b: Uint8Array): string {
  return Array.from({ length: 8 }, (_, i) => be16(b, i * 2).toString(16)).join(":");
}

/**
 * Decodes a PROXY v2 header at the start of `buf`: null while more bytes are needed; throws on a
 * wrong signature, a version/command other than v2 PROXY, a family other than TCP over IPv4/IPv6,
 * or TLVs that do not fill the announced length exactly.
 */
export function decodeProxyV2(buf: Uint8Array): { header: ProxyHeader; length: number } | null {
  for (let i = 0; i < Math.min(buf.length, SIGNATURE.length); i++) {
    if (buf[i] !== SIGNATURE[i]) throw new Error(`proxy v2: byte ${i} of the signature is 0x${buf[i]!.toString(16)}`);
  }
  if (buf.length < 16) return null;
  const length = 16 + be16(buf, 14);
  if (buf.length < length) return null;
  const verCmd = buf[12]!;
  const family = buf[13]!;
  if (verCmd !== 0x21) throw new Error(`proxy v2: version/command 0x${verCmd.toString(16)}, not 0x21`);
  const body = buf.subarray(16, length);
  let src: ProxyHeader["src"];
  let dst: ProxyHeader["dst"];
  let rest: Uint8Array;
  if (family === 0x11) {
    if (body.length < 12) throw new Error("proxy v2: an IPv4 address block shorter than 12 bytes");
    src = { address: [...body.subarray(0, 4)].join("."), port: be16(body, 8) };
    dst = { address: [...body.subarray(4, 8)].join("."), port: be16(body, 10) };
    rest = body.subarray(12);
  } else if (family === 0x21) {
    if (body.length < 36) throw new Error("proxy v2: an IPv6 address block shorter than 36 bytes");
    src = { address: ipv6(body.subarray(0, 16)), port: be16(body, 32) };
    dst = { address: ipv6(body.subarray(16, 32)), port: be16(body, 34) };
    rest = body.subarray(36);
  } else {
    throw new Error(`proxy v2: family 0x${family.toString(16)}, not TCP over IPv4 or IPv6`);
  }
  const tlvs = parseTlvs(rest, "header");
  const find = (t: number) => tlvs.find((x) => x.type === t)?.value ?? null;
  const unique = find(0x05);
  const custom = find(0xe0);
  const sslValue = find(0x20);
  let ssl: ProxyHeader["ssl"] = null;
  if (sslValue !== null) {
    if (sslValue.length < 5) throw new Error("proxy v2: PP2_TYPE_SSL shorter than 5 bytes");
    const verify = new DataView(sslValue.buffer, sslValue.byteOffset, sslValue.byteLength).getUint32(1);
    ssl = { client: sslValue[0]!, verify, subs: parseTlvs(sslValue.subarray(5), "PP2_TYPE_SSL") };
  }
  return {
    header: { verCmd, family, src, dst, tlvs, uniqueId: unique && hex(unique), spiffeId: custom && new TextDecoder("utf-8", { fatal: true }).decode(custom), ssl },
    length,
  };
}

/** One connection the backend accepted. */
export interface BackendConn {
  header: ProxyHeader | null;
  /** Why the header did not decode (the connection was closed). */
  error: string | null;
  /** Everything after the header, as text, and its size in bytes. */
  payload: string;
  payloadBytes: number;
  /** Bytes the backend wrote back. */
  written: number;
}

export interface Backend {
  readonly port: number;
  readonly conns: BackendConn[];
  stop(): void;
}

interface ConnState {
  conn: BackendConn;
  buf: Uint8Array;
  mode: "header" | "sniff" | "http" | "echo";
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A backend on 127.0.0.1 (port 0). With `proxy`, every connection must start with a PROXY v2
 * header. Then: an HTTP/1.1 request gets a response whose body is `caller=<0xE0> conn=<0x05 hex>`
 * (`none` without a header), and the connection is closed; anything else gets that line, then an
 * echo of what it sent.
 */
export function startBackend(proxy: boolean): Backend {
  const conns: BackendConn[] = [];
  const states = new WeakMap<Socket<undefined>, ConnState>();
  const send = (s: Socket<undefined>, st: ConnState, text: string) => {
    st.conn.written += Buffer.byteLength(text);
    s.write(text);
  };
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        const conn: BackendConn = { header: null, error: null, payload: "", payloadBytes: 0, written: 0 };
        conns.push(conn);
        states.set(s, { conn, buf: new Uint8Array(0), mode: proxy ? "header" : "sniff" });
      },
      data(s, chunk) {
        const st = states.get(s)!;
        let fresh: Uint8Array = chunk;
        if (st.mode === "header") {
          st.buf = concat(st.buf, chunk);
          let r: ReturnType<typeof decodeProxyV2>;
          try {
            r = decodeProxyV2(st.buf);
          } catch (e) {
            st.conn.error = (e as Error).message;
            s.end();
            return;
          }
          if (r === null) return;
          st.conn.header = r.header;
          fresh = st.buf.subarray(r.length);
          st.buf = new Uint8Array(0);
          st.mode = "sniff";
        }
        if (fresh.length === 0) return;
        st.conn.payload += Buffer.from(fresh).toString("latin1");
        st.conn.payloadBytes += fresh.length;
        const h = st.conn.header;
        const line = `caller=${h?.spiffeId ?? "none"} conn=${h?.uniqueId ?? "none"}`;
        if (st.mode === "sniff") st.mode = /^[A-Z]+ \S+ HTTP\/1\.[01]\r\n/.test(st.conn.payload) ? "http" : "echo";
        if (st.mode === "echo") {
          if (st.conn.written === 0) send(s, st, `${line}\n`);
          send(s, st, Buffer.from(fresh).toString("latin1"));
        } else if (st.conn.payload.includes("\r\n\r\n") && st.conn.written === 0) {
          send(s, st, `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${line.length}\r\nconnection: close\r\n\r\n${line}`);
          s.end();
        }
      },
    },
  });
  return { port: listener.port, conns, stop: () => listener.stop(true) };
}

export interface ProbeResult {
  readonly localPort: number;
  /** The client's side of the handshake completed. */
  readonly handshook: boolean;
  readonly received: string;
  readonly error: string | null;
}

/**
 * Dials HOST:PORT with TLS from this process (outside any workload), presenting `cred` when given
 * and not verifying the server; sends `hello\n` once the handshake is done, and collects what
 * comes back until the server closes (or 5 s).
 */
export async function tlsProbe(host: string, port: number, cred?: { cert: string; key: string }): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let localPort = 0;
    let handshook = false;
    let received = "";
    let error: string | null = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ localPort, handshook, received, error });
    };
    const timer = setTimeout(() => {
      error ??= "timeout";
      finish();
    }, 5000);
    Bun.connect({
      hostname: host,
      port,
      tls: { rejectUnauthorized: false, ...(cred ?? {}) },
      socket: {
        open(s) {
          localPort = s.localPort;
        },
        handshake(s, success, authError) {
          localPort = s.localPort;
          handshook = success || authError !== null;
          s.write("hello\n");
        },
        data(_s, d) {
          received += d.toString();
        },
        error(_s, e) {
          error = e.message;
        },
        close() {
          finish();
        },
        connectError(_s, e) {
          error = e.message;
          finish();
        },
      },
    }).catch((e: Error) => {
      error = e.message;
      finish();
    });
  });
}
