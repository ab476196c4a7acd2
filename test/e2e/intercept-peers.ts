/**
 * The far ends of the interception end-to-end test (intercept.test.ts, stand: intercept-setup.ts):
 * - the stand-in third-party API, a python3 HTTPS server run inside the test's network namespace
 *   (nsenter): every request it gets is recorded on stdout as a JSON line (headers as received, in
 *   order, duplicates kept; TLS version; SNI; which TLS connection), and answered with what it
 *   received minus header values, Authorization only as its SHA-256, so a workload never reads a
 *   secret back; each TLS connection's end is recorded with the bytes of HTTP it carried in
 *   (`conn_end`), and each handshake that failed (`handshake_failed`);
 * - the backend behind agent B's inbound listener: raw HTTP/1.1, connections kept alive, every
 *   request head recorded as received.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";

/**
 * One line of the API's record. `request`: a complete request; `incomplete`: its body broke off;
 * `conn_end`: connection `conn` ended, having carried `bytes` bytes of HTTP in (after TLS).
 */
export interface ApiRecord {
  readonly event: "request" | "incomplete" | "handshake_failed" | "listening" | "conn_end";
  readonly method: string;
  readonly path: string;
  readonly test_id: string | null;
  /** The TLS version of the connection it came on (the API speaks nothing else). */
  readonly tls: string;
  readonly sni: string | null;
  /** Which TLS connection, counted from 1. */
  readonly conn: number;
  readonly authorization: string[];
  readonly xfcc: string[];
  /** As received, in order, duplicates kept. */
  readonly headers: [string, string][];
  readonly body: string;
  /** conn_end: the bytes read from the connection after its handshake. */
  readonly bytes?: number;
}

/** A request head the backend behind B's listener received. */
export interface SeenRequest {
  readonly conn: number;
  readonly line: string;
  readonly headers: [string, string][];
}

/** The stand-in API: records each request as a JSON line; answers without header values. */
const API_SCRIPT = String.raw`
import http.server, json, socketserver, ssl, sys, hashlib, threading
cert, key, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
def sni(sock, name, _ctx):
    sock.tg_sni = name
ctx.sni_callback = sni
lock = threading.Lock()
conns = [0]

def emit(rec):
    with lock:
        sys.stdout.write(json.dumps(rec) + "\n")
        sys.stdout.flush()

class Incomplete(Exception):
    pass

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def read_exact(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise Incomplete("the body ended early")
        return data
    def read_body(self):
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            body = b""
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\r\n"):
                    raise Incomplete("a chunk size line ended early")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise Incomplete("a bad chunk size")
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b""):
                        pass
                    return body
                body += self.read_exact(size)
                self.read_exact(2)
        return self.read_exact(int(self.headers.get("Content-Length") or 0))
    def any(self):
        c = self.connection
        base = {"method": self.command, "path": self.path, "test_id": self.headers.get("X-Test-Id"), "tls": c.version(), "sni": getattr(c, "tg_sni", None), "conn": c.tg_conn}
        try:
            body = self.read_body()
        except Incomplete as e:
            emit({"event": "incomplete", **base, "why": str(e)})
            self.close_connection = True
            return
        headers = [[k, v] for k, v in self.headers.items()]
        auth = self.headers.get_all("Authorization") or []
        emit({"event": "request", **base, "authorization": auth, "xfcc": self.headers.get_all("X-Forwarded-Client-Cert") or [], "headers": headers, "body": body.decode("latin1")})
        out = json.dumps({"path": self.path, "tls": c.version(), "header_names": [k.lower() for k, _ in headers],
                          "authorization_sha256": [hashlib.sha256(a.encode()).hexdigest() for a in auth]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = do_DELETE = any

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    def finish_request(self, request, client_address):
        try:
            tls = ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            emit({"event": "handshake_failed", "error": str(e)})
            return
        with lock:
            conns[0] += 1
            tls.tg_conn = conns[0]
        got = [0]
        recv_into = tls.recv_into
        def counting(buf, *a):
            n = recv_into(buf, *a)
            got[0] += n
            return n
        tls.recv_into = counting
        try:
            super().finish_request(tls, client_address)
        finally:
            del tls.recv_into  # the cycle through it would keep the socket open past its handler
            emit({"event": "conn_end", "conn": tls.tg_conn, "bytes": got[0]})

srv = Server((host, port), Handler)
emit({"event": "listening", "port": srv.server_address[1]})
srv.serve_forever()
`;

/** Lines of a child's stdout, collected as they come. */
function collect(stream: ReadableStream<Uint8Array>, into: (line: string) => void): void {
  void (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      rest += decoder.decode(value, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const l of lines) into(l);
    }
  })();
}

export interface Api {
  /** Every line it printed so far, `listening` first. */
  readonly records: ApiRecord[];
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Runs the API in network namespace `netns` on ADDRESS:443 with `dir`/api.pem and api.key (the
 * script is written there too).
 */
export function startApi(dir: string, netns: string, address: string): Api {
  writeFileSync(join(dir, "api.py"), API_SCRIPT);
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn(["nsenter", `--net=/run/netns/${netns}`, "/usr/bin/python3", join(dir, "api.py"), join(dir, "api.pem"), join(dir, "api.key"), address, "443"], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const records: ApiRecord[] = [];
  let err = "";
  collect(proc.stdout, (l) => void records.push(JSON.parse(l) as ApiRecord));
  collect(proc.stderr, (l) => void (err += `${l}\n`));
  return {
    records,
    stderr: () => err,
    stop: async () => {
      proc.kill();
      await proc.exited;
    },
  };
}

export interface HeaderBackend {
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Connections accepted so far. */
  readonly conns: number;
}

/** A raw HTTP/1.1 backend on 127.0.0.1: keeps connections alive, records every request head. */
export function startHeaderBackend(): HeaderBackend & { stop(): void } {
  const state = { port: 0, requests: [] as SeenRequest[], conns: 0 };
  const listener = Bun.listen<{ conn: number; buf: string; need: number }>({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      open(s) {
        s.data = { conn: ++state.conns, buf: "", need: 0 };
      },
      data(s, chunk) {
        s.data.buf += Buffer.from(chunk).toString("latin1");
        for (;;) {
          if (s.data.need > 0) {
            const take = Math.min(s.data.need, s.data.buf.length);
            s.data.need -= take;
            s.data.buf = s.data.buf.slice(take);
            if (s.data.need > 0) return;
          }
          const end = s.data.buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          const [line, ...rest] = s.data.buf.slice(0, end).split("\r\n");
          s.data.buf = s.data.buf.slice(end + 4);
          const headers = rest.map((h): [string, string] => [h.slice(0, h.indexOf(":")), h.slice(h.indexOf(":") + 1).trim()]);
          s.data.need = Number(headers.find(([n]) => n.toLowerCase() === "content-length")?.[1] ?? 0);
          state.requests.push({ conn: s.data.conn, line: line!, headers });
          const body = `request ${state.requests.length} on connection ${s.data.conn}`;
          s.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
        }
      },
    },
  });
  state.port = listener.port;
  return Object.assign(state, { stop: () => listener.stop(true) });
}

