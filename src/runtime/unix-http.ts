/**
 * HTTP over a Unix socket: how the CLI talks to `server.sock` and `agent.sock` (../shared/DESIGN.md
 * section 2). A new socket directory is made 0700; an existing one keeps at most 0711 (the agent's
 * run service opens it to traversal, for run.sock and the workloads' CA bundle,
 * src/agent/run-service.ts); the socket appears at its path already 0600, whatever the umask
 * (private-bind.ts), so only root reaches these two sockets, at every moment.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, statSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import { TidegateError } from "../errors.ts";
import { bindPrivately } from "./private-bind.ts";

export class UnixHttpError extends TidegateError {}

export interface UnixServer {
  readonly path: string;
  stop(): Promise<void>;
}

/**
 * Serves `fetch` on the Unix socket `path`. A stale socket file from a crashed process is removed;
 * anything else in its place (a regular file, a directory) is refused.
 */
export function serveUnix(path: string, fetch: (req: Request) => Response | Promise<Response>): UnixServer {
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, statSync(dir).mode & 0o711);
  if (existsSync(path)) {
    if (!lstatSync(path).isSocket()) {
      throw new UnixHttpError("socket_path_taken", `socket: ${JSON.stringify(path)} exists and is not a socket`);
    }
    unlinkSync(path);
  }
  // development: false, never Bun's default of true: a handler's uncaught error then answers a bare
  // 500, not a page carrying the error's message and stack.
  const server = bindPrivately(path, 0o600, (at) => Bun.serve({ unix: at, fetch, development: false }), (s) => void s.stop(true));
  return {
    path,
    stop: async () => {
      await server.stop(true);
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}

export interface UnixResponse {
  readonly status: number;
  readonly body: unknown;
}

/** The codes of a connect to a Unix socket that nothing listens on: no file, or one left by a process that is gone. */
const NOBODY_LISTENS = new Set(["ENOENT", "ECONNREFUSED", "ConnectionRefused", "FailedToOpenSocket"]);

/** True when `callUnix` failed because nothing listens on the socket (the process is not running). */
export function nobodyListens(e: unknown): boolean {
  return NOBODY_LISTENS.has(String((e as { cause?: { code?: unknown } } | null)?.cause?.code ?? ""));
}

/**
 * One JSON request to a Unix-socket API. A missing or refused socket becomes `socket_unreachable`
 * with `what` ("the server", "the agent") named, so the CLI can say which process is not running.
 */
export async function callUnix(path: string, what: string, method: string, url: string, body?: unknown, signal?: AbortSignal): Promise<UnixResponse> {
  let res: Response;
  try {
    res = await fetch(`http://localhost${url}`, {
      method,
      unix: path,
      ...(signal !== undefined ? { signal } : {}),
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    } as RequestInit);
  } catch (cause) {
    const code = (cause as { code?: string }).code ?? "";
    const why = NOBODY_LISTENS.has(code) ? "is it running?" : String(code || cause);
    throw new UnixHttpError("socket_unreachable", `cannot reach ${what} at ${JSON.stringify(path)}: ${why}`, { cause });
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** True when an HTTP server answers GET `url` on the Unix socket `path` (any status); false when none does. */
export async function answersOn(path: string, url = "/v1/status"): Promise<boolean> {
  if (!existsSync(path)) return false;
  return callUnix(path, "the socket", "GET", url).then(
    () => true,
    () => false,
  );
}
