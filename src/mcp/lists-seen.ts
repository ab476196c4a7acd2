/**
 * What a client was sent of each list, and under which filter (gate.ts `listsChanged`), kept per
 * conversation. Over stdio a conversation is the gate's own. Over Streamable HTTP one session's
 * requests go over several connections: the client's stream for the server's messages (a GET)
 * is rarely the connection that carried its tools/list. So an HTTP carrier gives its gates one
 * SessionLists, and every gate of a listener or proxy shares one ListsSeen per (caller, server,
 * Mcp-Session-Id). Then the stream can tell the client of a change to a list that went over
 * another connection.
 *
 * The record also holds the session's tool calls whose answer did not come on the stream that was
 * to carry it (`awaited`): the server may send it on another of the session's streams, a GET that
 * resumes the first (MCP "Resumability and Redelivery"), and the gate that sees it there logs the
 * call with its duration (gate.ts `fromServer`).
 *
 * A session's record lives while a connection of it is open: each gate holds what it joined
 * until it closes (`release`). When the last lets go, the record lingers for RESUME_WINDOW_MS: a
 * client that lost its only connection comes back on a new one to resume (MCP "Resumability and
 * Redelivery"; the TypeScript SDK retries after 1 s, then 1.5 s), and a join of the session in
 * that time takes the record up again, with the calls it awaits. When the window passes with no
 * join, or the SessionLists is closed (the agent stops), the calls still awaited are logged
 * without an answer (`unanswered`): no stream of the session is left to bring one.
 *
 * Bounds: MAX_SESSIONS records a SessionLists keeps, lingering ones included (at the bound, the
 * record that began lingering first ends at once to make room; only records held by a connection
 * refuse a join), MAX_JOINED that one gate holds, MAX_AWAITED calls a record awaits. A gate past
 * either of the first two keeps a record of its own for that session, which no other connection
 * sees. A session ID that is not 1-256 visible ASCII characters (MCP "Session Management") is
 * never shared.
 */

import type { JsonRpcId } from "./errors.ts";

/** Records one SessionLists keeps at once. */
export const MAX_SESSIONS = 4096;
/** How long a record no connection holds waits for the client to come back and resume. */
export const RESUME_WINDOW_MS = 30_000;
/** Sessions one gate (one connection) holds a record of at once: a proxy's pooled connection carries several clients' sessions. */
export const MAX_JOINED = 64;

/** Tool calls one session's record awaits at once; past it, a call whose stream ended is logged without an answer at once. */
export const MAX_AWAITED = 1024;

/** The three filters a rule decides lists with (gate.ts KINDS), each with its list-changed notification. */
export type ListKind = "tool" | "resource" | "prompt";

/**
 * The member of a list result holding a list (gate.ts LISTS). `resourceTemplates` is decided by
 * the resource filter and announced with the resources' notification: MCP has none of its own.
 */
export type ListName = "tools" | "resources" | "resourceTemplates" | "prompts";

export class ListsSeen {
  /** Per list sent, what it was last filtered under (gate.ts `filterOf`): each list on its own, so one refiltered after a reload does not stand for another sent before it. */
  readonly listed = new Map<ListName, unknown>();
  /** The tools the last tools list left out as not pinned (waiting for approval). */
  readonly unpinned = new Set<string>();
  /** Tool calls whose answer's stream ended without it, by JSON-RPC id (a session's record only). */
  readonly awaited = new Map<JsonRpcId, AwaitedCall>();
}

/** A tool call awaited by its session's record: logged once, either way. */
export interface AwaitedCall {
  /** Its answer came on another of the session's streams. */
  answered(isError: boolean): void;
  /** No answer will come: the session's last connection closed, or its id was used again. */
  unanswered(): void;
}

export interface Joined {
  readonly seen: ListsSeen;
  release(): void;
}

const SESSION_ID = /^[\x21-\x7e]{1,256}$/;

/** The timer a lingering record waits with (the runtime's by default; a test's own clock). */
export interface LingerTimers {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

const RUNTIME_TIMERS: LingerTimers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    // A lingering record must not keep a stopping process alive (Bun and Node timers; Deno's are numbers).
    (t as { unref?: () => void }).unref?.();
    return t;
  },
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

interface Entry {
  readonly seen: ListsSeen;
  refs: number;
  /** While no connection holds it: the timer that ends it. */
  linger: unknown;
}

/** The records of one listener's or proxy's sessions, shared by its gates. */
export class SessionLists {
  private readonly entries = new Map<string, Entry>();
  /** The records no connection holds, in the order they began to linger. */
  private readonly lingering = new Map<string, Entry>();
  private closed = false;

  constructor(
    private readonly max = MAX_SESSIONS,
    private readonly lingerMs = RESUME_WINDOW_MS,
    private readonly timers: LingerTimers = RUNTIME_TIMERS,
  ) {}

  /** Records kept now, lingering ones included. */
  get size(): number {
    return this.entries.size;
  }

  /** Records no connection holds, waiting for the client to resume. */
  get waiting(): number {
    return this.lingering.size;
  }

  /**
   * The record of `session` (an Mcp-Session-Id, or "" for a server that gives none) between
   * `caller` and `server`, held until `release`; null when the ID cannot be shared, or the
   * records are at their bound and every one is held by a connection. After `close`, every
   * join is null.
   */
  join(caller: string, server: string, session: string): Joined | null {
    if (this.closed || (session !== "" && !SESSION_ID.test(session))) return null;
    const key = `${caller}\n${server}\n${session}`;
    let e = this.entries.get(key);
    if (e !== undefined && e.refs === 0) {
      this.timers.clear(e.linger);
      e.linger = null;
      this.lingering.delete(key);
    }
    if (e === undefined) {
      if (this.entries.size >= this.max) {
        const oldest = this.lingering.keys().next();
        if (oldest.done) return null;
        this.end(oldest.value);
      }
      e = { seen: new ListsSeen(), refs: 0, linger: null };
      this.entries.set(key, e);
    }
    e.refs += 1;
    const entry = e;
    let held = true;
    return {
      seen: entry.seen,
      release: () => {
        if (!held) return;
        held = false;
        entry.refs -= 1;
        if (entry.refs !== 0 || this.entries.get(key) !== entry) return;
        if (this.closed || entry.seen.awaited.size === 0) return this.end(key);
        entry.linger = this.timers.set(() => this.end(key), this.lingerMs);
        this.lingering.set(key, entry);
      },
    };
  }

  /** Ends every lingering record now, logging what each awaits without an answer; joins are refused from now on. */
  close(): void {
    this.closed = true;
    for (const key of [...this.lingering.keys()]) this.end(key);
  }

  /** The record of `key` goes; the calls it awaits are logged without an answer. */
  private end(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.lingering.delete(key);
    if (entry.linger !== null) this.timers.clear(entry.linger);
    entry.linger = null;
    const left = [...entry.seen.awaited.values()];
    entry.seen.awaited.clear();
    for (const call of left) call.unanswered();
  }
}
