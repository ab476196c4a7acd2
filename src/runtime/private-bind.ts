/**
 * A Unix socket that appears at its path with its final mode already (agent.sock, server.sock,
 * run.sock). bind(2) makes the socket file with 0777 & ~umask, and connect(2) checks the file's
 * mode only when it connects: a process that connects between bind and chmod keeps its connection
 * afterwards. Under a permissive umask, in a folder others may traverse (the run folder is 0711
 * with capture), that would let any user in for that moment.
 *
 * Guaranteed: the socket is bound at `<folder>/.tg-XXXXXX/s`, in a fresh folder beside its path
 * that only the owner may enter (0700), given `mode` there, and renamed to `path` (rename(2) is
 * atomic: at `path` there is the old file, or the new socket with its mode, never anything
 * between). The fresh folder is removed, on failure too. Replacing what is at `path` is the
 * caller's decision: it checks first (a stale socket, never a regular file).
 * Rejected: a path whose fresh folder would make the bind path longer than a socket address holds
 * (`socket_path_too_long`, naming the path).
 */
import { chmodSync, mkdtempSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { TidegateError } from "../errors.ts";

export class PrivateBindError extends TidegateError<"socket_path_too_long"> {}

/** sun_path holds 108 bytes with its NUL. */
const MAX_SOCKET_PATH = 107;
/** What the fresh folder adds to the folder's path: `/.tg-XXXXXX/s`. */
const EXTRA = "/.tg-XXXXXX/s".length;

/**
 * Binds with `bind` (which gets the private path and returns its listener), sets `mode`, and moves
 * the socket to `path`. When the mode or the move fails, `close` gets the listener and the error
 * is rethrown; a failing `bind` leaves nothing behind.
 */
export function bindPrivately<T>(path: string, mode: number, bind: (privatePath: string) => T, close: (listener: T) => void): T {
  const dir = dirname(path);
  if (new TextEncoder().encode(dir).length + EXTRA > MAX_SOCKET_PATH) {
    throw new PrivateBindError("socket_path_too_long", `socket: ${JSON.stringify(path)} is too long for a Unix socket: its folder may be at most ${MAX_SOCKET_PATH - EXTRA} bytes`);
  }
  // mkdtemp makes 0700 & ~umask, never more; the chmod gives the owner back what a umask took.
  const fresh = mkdtempSync(join(dir, ".tg-"));
  try {
    chmodSync(fresh, 0o700);
    const at = join(fresh, "s");
    const listener = bind(at);
    try {
      chmodSync(at, mode);
      renameSync(at, path);
    } catch (e) {
      close(listener);
      throw e;
    }
    return listener;
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}
