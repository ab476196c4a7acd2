/**
 * Tool pins (issue 10, "Tool pinning"): per server, the hash of each tool definition
 * (tool-pin.ts) tidegate accepted, and the definitions that changed since and wait for approval.
 *
 * Rules:
 * - the first definition seen of a tool is pinned (trust on first sight), unless the book was
 *   loaded from an approved file for that server, in which case a tool the file does not name is
 *   waiting too (`strict`);
 * - a definition with the pinned hash is accepted;
 * - any other hash is recorded as waiting (the latest one seen), and the tool is hidden and
 *   refused until `approve`; approving pins the waiting hash;
 * - a server key is its SPIFFE ID, or for an intercepted third party the rule's name;
 * - bounded: at most MAX_TOOLS_PER_SERVER tools kept per server (more are hidden and refused, not
 *   recorded), and a changed definition is announced (`news`) once per hash and at most
 *   MAX_ANNOUNCED times per tool and run, so a server cycling definitions cannot flood the log.
 * The book is plain data (`toJSON`, `fromJSON`), so the agent can keep it in a file.
 *
 * Beside the hashes, it keeps the definitions it was shown of the hashes pinned or waiting, so
 * that an admin reads what changed before approving it (`entry`): each at most
 * MAX_DEFINITION_CHARS of canonical JSON, all together at most MAX_DEFINITIONS_CHARS; past either,
 * that definition is known by its hash alone. One no longer pinned or waiting anywhere is let go.
 * They are not in `toJSON` (the pins): `definitionsJSON` and `restoreDefinitions` carry them, and
 * `onDefinitionsChange` tells when they changed, so the agent keeps them in a file of their own.
 */
import { isJsonObject } from "./json.ts";

export type PinVerdict =
  /** Pinned now (first sight) or already pinned with this hash. */
  | { readonly state: "pinned"; readonly first: boolean }
  /** A definition other than the pinned one (old null: not pinned at all, under a strict server); `news` is true the first time this hash is seen. */
  | { readonly state: "changed"; readonly old: string | null; readonly news: boolean };

export interface PinStore {
  /** `definition`: the canonical JSON `hash` is the SHA-256 of (tool-pin.ts), kept to be shown. */
  see(server: string, tool: string, hash: string, definition?: string): PinVerdict;
  /** True while `tool` of `server` has a definition waiting for approval, or the server is strict and `tool` is not pinned. */
  waiting(server: string, tool: string): boolean;
}

export interface ServerPins {
  /** Tool name to pinned hash. */
  readonly pinned: Record<string, string>;
  /** Tool name to the hash waiting for approval. */
  readonly waiting: Record<string, string>;
  /** Loaded from an approved file: tools it does not name wait too. */
  readonly strict: boolean;
}

export type PinBookData = Record<string, ServerPins>;

/** One hash of a tool, with its definition (canonical JSON) when the book was shown it and kept it. */
export interface PinnedDefinition {
  readonly hash: string;
  readonly definition: string | null;
}

/** One tool of one server: what is pinned and what waits (null: nothing). */
export interface ToolPins {
  readonly pinned: PinnedDefinition | null;
  readonly waiting: PinnedDefinition | null;
}

/** A tool's pins with each kept definition parsed back into its members, as agent.sock's GET /v1/mcp/tool answers and `mcp tools SERVER TOOL` reads. */
export function parsedPins(e: ToolPins): { pinned: { hash: string; definition: Record<string, unknown> | null } | null; waiting: { hash: string; definition: Record<string, unknown> | null } | null } {
  const parsed = (d: PinnedDefinition | null) => (d === null ? null : { hash: d.hash, definition: d.definition === null ? null : (JSON.parse(d.definition) as Record<string, unknown>) });
  return { pinned: parsed(e.pinned), waiting: parsed(e.waiting) };
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Tools kept per server (pinned and waiting); a server listing more gets the others hidden and refused, unrecorded. */
export const MAX_TOOLS_PER_SERVER = 1024;
/** Changed definitions of one tool announced (`news`) per run, at most: a server cycling definitions is not a flood of events. */
const MAX_ANNOUNCED = 16;
/** The longest definition kept to be shown (canonical JSON, characters). */
export const MAX_DEFINITION_CHARS = 64 * 1024;
/** All definitions kept, characters. */
export const MAX_DEFINITIONS_CHARS = 8 * 1024 * 1024;

export class PinBook implements PinStore {
  private readonly servers = new Map<string, { pinned: Map<string, string>; waiting: Map<string, string>; strict: boolean }>();

  /** Called after every change (a pin, a new waiting hash, an approval). */
  onChange: (() => void) | null = null;
  /** Called after the definitions kept changed (one kept, or let go). */
  onDefinitionsChange: (() => void) | null = null;
  /** In memory: per server and tool, the changed hashes already announced. */
  private readonly announced = new Map<string, Set<string>>();
  /** In memory: hash to the definition shown with it, for the hashes pinned or waiting. */
  private readonly definitions = new Map<string, string>();
  private definitionChars = 0;

  private server(name: string) {
    let s = this.servers.get(name);
    if (s === undefined) {
      s = { pinned: new Map(), waiting: new Map(), strict: false };
      this.servers.set(name, s);
    }
    return s;
  }

  see(server: string, tool: string, hash: string, definition?: string): PinVerdict {
    const s = this.server(server);
    const pinned = s.pinned.get(tool);
    if (pinned === hash) {
      this.keep(hash, definition);
      if (s.waiting.delete(tool)) this.changed();
      return { state: "pinned", first: false };
    }
    const key = `${server}\u0000${tool}`;
    if (pinned === undefined && !s.waiting.has(tool) && s.pinned.size + s.waiting.size >= MAX_TOOLS_PER_SERVER) return { state: "changed", old: null, news: false };
    if (pinned === undefined && !s.strict) {
      s.pinned.set(tool, hash);
      this.keep(hash, definition);
      this.changed();
      return { state: "pinned", first: true };
    }
    this.keep(hash, definition);
    if (s.waiting.get(tool) !== hash) {
      s.waiting.set(tool, hash);
      this.changed();
    }
    let seen = this.announced.get(key);
    if (seen === undefined) this.announced.set(key, (seen = new Set()));
    const news = !seen.has(hash) && seen.size < MAX_ANNOUNCED;
    if (news) seen.add(hash);
    return { state: "changed", old: pinned ?? null, news };
  }

  /**
   * Under a strict server, a tool the file did not name waits too, listed or not (a tool the server
   * calls but never lists); so does every tool neither pinned nor waiting of a server at
   * MAX_TOOLS_PER_SERVER (not recorded one by one: a server could list new names without end).
   */
  waiting(server: string, tool: string): boolean {
    const s = this.servers.get(server);
    if (s === undefined) return false;
    if (s.waiting.has(tool)) return true;
    if (s.pinned.has(tool)) return false;
    return s.strict || s.pinned.size + s.waiting.size >= MAX_TOOLS_PER_SERVER;
  }

  /**
   * Pins the waiting definitions of `server` (only `tool`'s when given; only when its waiting hash
   * is `hash`, when given: what the admin read, not what the server swapped in since); returns the
   * tools approved.
   */
  approve(server: string, tool?: string, hash?: string): string[] {
    const s = this.servers.get(server);
    if (s === undefined) return [];
    const tools = (tool === undefined ? [...s.waiting.keys()] : s.waiting.has(tool) ? [tool] : []).filter((t) => hash === undefined || s.waiting.get(t) === hash);
    for (const t of tools) {
      s.pinned.set(t, s.waiting.get(t)!);
      s.waiting.delete(t);
    }
    if (tools.length > 0) this.changed();
    return tools;
  }

  /**
   * Replaces `server`'s pins with `hashes` (an approved file): strict from then on. `definitions`:
   * the file's texts by hash (the caller vouches each is the text its hash is taken of), kept to be
   * shown.
   */
  load(server: string, hashes: ReadonlyMap<string, string>, definitions: ReadonlyMap<string, string> = new Map()): void {
    this.servers.set(server, { pinned: new Map(hashes), waiting: new Map(), strict: true });
    const pinned = new Set(hashes.values());
    for (const [hash, text] of definitions) if (pinned.has(hash)) this.keep(hash, text);
    this.changed();
  }

  /** One tool's pinned and waiting hashes, with their definitions when kept; null when the server or tool is unknown. */
  entry(server: string, tool: string): ToolPins | null {
    const s = this.servers.get(server);
    const pinned = s?.pinned.get(tool);
    const waiting = s?.waiting.get(tool);
    if (pinned === undefined && waiting === undefined) return null;
    const of = (hash: string | undefined): PinnedDefinition | null => (hash === undefined ? null : { hash, definition: this.definitions.get(hash) ?? null });
    return { pinned: of(pinned), waiting: of(waiting) };
  }

  /** The definitions kept, hash to canonical JSON (each hash pinned or waiting somewhere). */
  definitionsJSON(): Record<string, string> {
    return Object.fromEntries(this.definitions);
  }

  /**
   * Takes back definitions kept earlier (`definitionsJSON`): those of hashes pinned or waiting now,
   * within the bounds. The caller vouches that each is the text its hash is taken of.
   */
  restoreDefinitions(kept: ReadonlyMap<string, string>): void {
    const live = this.liveHashes();
    for (const [hash, text] of kept) if (live.has(hash)) this.keep(hash, text, false);
  }

  private liveHashes(): Set<string> {
    const live = new Set<string>();
    for (const s of this.servers.values()) for (const m of [s.pinned, s.waiting]) for (const h of m.values()) live.add(h);
    return live;
  }

  /** Keeps `definition` of `hash` (pinned or waiting now), within the bounds. */
  private keep(hash: string, definition: string | undefined, tell = true): void {
    if (definition === undefined || this.definitions.has(hash) || definition.length > MAX_DEFINITION_CHARS) return;
    if (this.definitionChars + definition.length > MAX_DEFINITIONS_CHARS) return;
    this.definitions.set(hash, definition);
    this.definitionChars += definition.length;
    if (tell) this.onDefinitionsChange?.();
  }

  /** After a change of the hashes: lets go of the definitions no longer pinned or waiting anywhere, then tells onChange. */
  private changed(): void {
    if (this.definitions.size > 0) {
      const live = this.liveHashes();
      let released = false;
      for (const [h, d] of this.definitions) {
        if (live.has(h)) continue;
        this.definitions.delete(h);
        this.definitionChars -= d.length;
        released = true;
      }
      if (released) this.onDefinitionsChange?.();
    }
    this.onChange?.();
  }

  /** What is pinned and waiting per server; null when the server has never been seen. */
  show(server: string): ServerPins | null {
    const s = this.servers.get(server);
    return s === undefined ? null : { pinned: Object.fromEntries(s.pinned), waiting: Object.fromEntries(s.waiting), strict: s.strict };
  }

  toJSON(): PinBookData {
    const out: PinBookData = {};
    for (const name of [...this.servers.keys()].sort()) out[name] = this.show(name)!;
    return out;
  }

  /** Throws TypeError naming the first member of the wrong shape. */
  static fromJSON(data: unknown): PinBook {
    const book = new PinBook();
    if (!isJsonObject(data)) throw new TypeError("pins: not an object");
    for (const [name, v] of Object.entries(data)) {
      if (!isJsonObject(v) || !isJsonObject(v.pinned) || !isJsonObject(v.waiting) || typeof v.strict !== "boolean") throw new TypeError(`pins: server ${JSON.stringify(name.slice(0, 128))} is not {pinned, waiting, strict}`);
      const s = book.server(name);
      s.strict = v.strict;
      for (const [which, map] of [["pinned", s.pinned], ["waiting", s.waiting]] as const) {
        for (const [tool, hash] of Object.entries(v[which] as Record<string, unknown>)) {
          if (typeof hash !== "string" || !HEX64.test(hash)) throw new TypeError(`pins: ${which} hash of ${JSON.stringify(tool.slice(0, 128))} on ${JSON.stringify(name.slice(0, 128))} is not 64 hex digits`);
          map.set(tool, hash);
        }
      }
    }
    return book;
  }
}
