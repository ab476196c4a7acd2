/**
 * A TLS listener in front of a hono app: node:tls terminates TLS and hands each connection to a
 * node:http server running the app (@hono/node-server's request listener). Bun.serve cannot give a
 * handler the client's certificate (PLATFORM-NOTES, "Machine facts"); node:tls can, in
 * `secureConnection`, so the mutual-TLS listener authenticates each connection there once and the
 * app reads the result per request through `c.env.incoming.socket`.
 *
 * `setContext` swaps certificate, key and CA list for new handshakes (a renewed server SVID, a new
 * root in the bundle); established connections keep theirs.
 *
 * Every connection must have each answer sent within `answerTimeoutMs` (ANSWER_TIMEOUT_MS) of its
 * opening (the TLS handshake included) or of the end of its previous answer; past that it is
 * destroyed, whatever it is in the middle of. Under Bun neither node:tls's handshakeTimeout nor
 * node:http's headersTimeout, requestTimeout or keepAliveTimeout closes these connections, so
 * without this deadline anyone who can reach a listener holds a descriptor for as long as they
 * like: a TCP connection that never says hello, a TLS one that sends nothing, half a request head,
 * or a body that never ends.
 *
 * With `cap`, a connection from a source address that already holds `cap.max` open ones is
 * destroyed in the "connection" event: under Bun that is the accept, before the ClientHello is
 * read, so the refused peer costs no handshake (no ServerHello is sent; slow-peers.test.ts shows
 * it with openssl s_client). See source-cap.ts.
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import tls from "node:tls";
import { getRequestListener } from "@hono/node-server";
import type { HostPort } from "./host-port.ts";
import { sourceKey, type SourceCap } from "./source-cap.ts";

/** See above: the longest a connection may wait for, or take to send, its next whole request. */
export const ANSWER_TIMEOUT_MS = 60_000;

export interface TlsMaterial {
  /** PEM: the server's SVID then its intermediates. */
  readonly certPem: string;
  /** PEM PKCS#8. */
  readonly keyPem: string;
  /** PEM roots: when client certificates are asked, the CAs named to clients and used to build their chains. */
  readonly caPem: string;
}

export interface TlsListenerOptions {
  readonly material: TlsMaterial;
  /** Ask for a client certificate (not enforced by TLS: `onSecure` decides, the app answers). */
  readonly requestCert: boolean;
  readonly fetch: (request: Request, env: { incoming: http.IncomingMessage }) => Response | Promise<Response>;
  /** Takes a request before the app sees it (answering it itself) by returning true. */
  readonly intercept?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** Called once per connection after the handshake, before any request on it is read. */
  readonly onSecure?: (socket: tls.TLSSocket) => void;
  /** Default ANSWER_TIMEOUT_MS (tests shorten it). */
  readonly answerTimeoutMs?: number;
  /** Open connections per source address; none: no cap (the server always passes one). */
  readonly cap?: SourceCap;
}

export interface TlsListener {
  listen(at: HostPort): Promise<HostPort>;
  setContext(material: TlsMaterial): void;
  close(): Promise<void>;
}

function contextOptions(m: TlsMaterial): tls.SecureContextOptions {
  return { cert: m.certPem, key: m.keyPem, ca: m.caPem, minVersion: "TLSv1.2" };
}

export function createTlsListener(opts: TlsListenerOptions): TlsListener {
  // overrideGlobalObjects would replace the process's global Request/Response with
  // @hono/node-server's own, which Bun.serve (the admin socket) and fetch then reject.
  const app = getRequestListener((req, env) => opts.fetch(req, env as { incoming: http.IncomingMessage }), { overrideGlobalObjects: false });
  const intercept = opts.intercept;
  const httpServer = http.createServer({ keepAliveTimeout: 60_000 }, intercept === undefined ? app : (req, res) => void (intercept(req, res) || app(req, res)));
  const sockets = new Set<Socket>();
  const answerTimeoutMs = opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
  const deadlines = new Map<Socket, ReturnType<typeof setTimeout>>();
  const deadline = (socket: Socket) => {
    clearTimeout(deadlines.get(socket));
    if (socket.destroyed) return void deadlines.delete(socket);
    deadlines.set(socket, setTimeout(() => socket.destroy(), answerTimeoutMs));
  };
  httpServer.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => res.on("finish", () => deadline(req.socket)));
  const server = tls.createServer({
    ...contextOptions(opts.material),
    requestCert: opts.requestCert,
    rejectUnauthorized: false,
    ALPNProtocols: ["http/1.1"],
  });
  // Every connection from its accept on, not from its handshake: close() destroys them all, since
  // server.close() waits for each one, and one that never says hello would hold a stop forever.
  // A refused connection is never tracked: it is closed before anything else sees it.
  server.on("connection", (socket: Socket) => {
    const source = sourceKey(socket.remoteAddress);
    if (opts.cap !== undefined && !opts.cap.admit(source)) {
      socket.on("error", () => undefined);
      socket.destroy();
      return;
    }
    sockets.add(socket);
    deadline(socket);
    socket.on("close", () => {
      opts.cap?.release(source);
      sockets.delete(socket);
      clearTimeout(deadlines.get(socket));
      deadlines.delete(socket);
    });
  });
  // Under Bun the socket is the one "connection" gave, already tracked (and destroying it ends both).
  server.on("secureConnection", (socket: tls.TLSSocket) => {
    socket.on("error", () => socket.destroy());
    opts.onSecure?.(socket);
    httpServer.emit("connection", socket);
  });
  server.on("tlsClientError", () => {
    // a failed handshake: the client sees the alert; nothing to serve.
  });
  return {
    listen: (at) =>
      new Promise<HostPort>((resolve, reject) => {
        server.once("error", reject);
        server.listen(at.port, at.host, () => {
          server.off("error", reject);
          const a = server.address() as AddressInfo;
          resolve({ host: at.host, port: a.port });
        });
      }),
    setContext: (m) => server.setSecureContext(contextOptions(m)),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        httpServer.close();
        if (!server.listening) return resolve();
        server.close(() => resolve());
      }),
  };
}
