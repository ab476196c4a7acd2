/**
 * How many run.sock connections may be open at once, and whose (docs/capture.md). A connection
 * holds its slot from accept until its command ends, so a caller that opens connections and never
 * finishes a request (or runs commands that never end) holds slots; without a share per user, one
 * run-group member could hold them all and deny `tidegate run` to everyone else, root included.
 *
 * Combining rule, fail closed (the first refusal wins), counting every connection open at accept,
 * those being answered a refusal included:
 * - MAX_CONNECTIONS open in all: `run_busy`, for anyone (the agent's descriptors are finite).
 * - a uid other than root with MAX_CONNECTIONS_PER_USER open: `run_busy_user`.
 * - callers other than root with MAX_CONNECTIONS - ROOT_RESERVE open between them: `run_busy`.
 * Root has no share of its own: it is the operator, who can stop the agent anyway, so capping it
 * protects nobody; instead ROOT_RESERVE slots stay free for it however many members fill the rest,
 * so the operator can still run a command while the group is at its limit.
 */
export const MAX_CONNECTIONS = 128;
export const MAX_CONNECTIONS_PER_USER = 16;
export const ROOT_RESERVE = 16;

export type RunBusyCode = "run_busy" | "run_busy_user";

export interface OpenConnections {
  /** Open in all. */
  readonly total: number;
  /** Open by this uid. */
  readonly ofUid: number;
  /** Open by callers other than root. */
  readonly notRoot: number;
}

/** Null when a connection of `uid` may be served with `open` already open; else the refusal. */
export function admitConnection(uid: number, open: OpenConnections): { readonly code: RunBusyCode; readonly message: string } | null {
  if (open.total >= MAX_CONNECTIONS) return { code: "run_busy", message: `run: the agent has ${MAX_CONNECTIONS} run connections open (its limit); try again` };
  if (uid === 0) return null;
  if (open.ofUid >= MAX_CONNECTIONS_PER_USER) {
    return { code: "run_busy_user", message: `run: uid ${uid} has ${open.ofUid} run connections open (at most ${MAX_CONNECTIONS_PER_USER} per user); end one and try again` };
  }
  if (open.notRoot >= MAX_CONNECTIONS - ROOT_RESERVE) {
    return { code: "run_busy", message: `run: callers other than root have ${open.notRoot} run connections open (at most ${MAX_CONNECTIONS - ROOT_RESERVE}, ${ROOT_RESERVE} kept for root); try again` };
  }
  return null;
}
