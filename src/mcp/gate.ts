/**
 * MCP policy on one conversation between a client and a server (issue 10; DESIGN.md section 6),
 * message by message, whatever carries them (an HTTP body, an SSE event, a stdio line).
 *
 * From the client (`fromClient`), refused with a JSON-RPC error answer and nothing forwarded:
 * - an HTTP request whose Mcp-Method, Mcp-Name or Mcp-Param-* header disagrees with its body
 *   (MCP 2026-07-28; `mcp_header_mismatch`, error -32020; headers.ts): policy reads the body;
 * - a message that does not parse (message.ts: parse error, batch, too large or deep, duplicate
 *   key, wrong shape), or a tools/call, resources/read or prompts/get without its name (classify.ts);
 * - a notification whose method is not notifications/* (`mcp_bad_notification`: a tools/call
 *   without an id would run unchecked on a server that executes notifications);
 * - a request while MAX_PENDING others wait for their answers (`mcp_too_many_pending`);
 * - a request whose id is already waiting for its answer (`mcp_duplicate_id`: its answer could
 *   not be told apart, and a tools/list result must never be taken for another's);
 * - a tools/call of a tool the rule's `mcp.tools` denies or does not allow (`tool_denied`,
 *   `tool_not_allowed`), or whose definition changed since it was pinned and waits for approval
 *   (`tool_changed`): error POLICY_DENIED, naming the tool and the rule.
 * Everything else passes: other requests, notifications, and the client's answers to the server.
 * The rule is asked at each message (GateContext.rule may be a function), so a reload applies to
 * the next one; a `closed` rule (no rule lets the conversation go on) refuses every request with
 * its reason and asks the carrier to close (`close`).
 *
 * - a completion/complete of a prompt or resource template (its `ref`) the rule refuses: it runs
 *   that prompt's or template's completer (a template is decided as a listed one is);
 * - a resources/read, resources/subscribe or resources/unsubscribe of a URI `mcp.resources`
 *   refuses (decided on the URI normalized by resource-uri.ts; one it refuses to normalize, with
 *   dot segments or encoded slashes, is `resource_bad_uri`), a prompts/get of a prompt `mcp.prompts` refuses (`resource_denied`,
 *   `resource_not_allowed`, `prompt_denied`, `prompt_not_allowed`): error POLICY_DENIED.
 *
 * From the server (`fromServer`): any result holding a `tools`, `resources`, `resourceTemplates`
 * or `prompts` array is taken for that list, whatever request it answers (so one arriving on
 * another stream is filtered all the same): items the rule hides, items without their name (uri,
 * uriTemplate), tools whose name no call could use (classify.ts TOOL_NAME), and tools whose
 * definition is not the pinned one are removed (pins.ts; a newly
 * seen changed definition is logged `tool_definition_changed`). A result with a key that only
 * folds to a list's (`Tools`: a Go client reads it as the list) is `invalid`, and a tool with a
 * key that only folds to a pinned member (`Description`) is removed. A resource template
 * (resources/templates/list) is decided by `mcp.resources` on its text with each `{...}`
 * expression as `*` (resource-template.ts: `file:///shared/{name}` as `file:///shared/*`), and
 * hidden when that text is refused or cannot be decided (a brace outside a pair, a text that does
 * not normalize). That decides only what the client is shown: every URI made from a template,
 * listed or hidden, is decided on its own at resources/read. Other messages pass unchanged,
 * list-changed notifications included, except, where the carrier announces list changes itself
 * (`announcesLists`, `listsChanged`; resources/list_changed stands for the templates too), the
 * answer to the client's initialize, which then declares `listChanged` for the server's lists. A
 * message that does not parse is `invalid`: the carrier drops it or answers the request it stood
 * for with an error.
 *
 * Audit: one `tool_call` per tools/call: refused ones at once (decision deny, reason), allowed
 * ones when their answer comes (duration, is_error), or at `close` when it never came. The
 * arguments are logged only as their SHA-256 (of canonical JSON), never as values. One
 * `mcp_denied` per refused resource or prompt request (its method, the URI without its query or
 * fragment, or the prompt's name; the reason).
 */
import { classify, TOOL_NAME } from "./classify.ts";
import { INVALID_REQUEST, type JsonRpcErrorResponse, type JsonRpcId, jsonRpcError, jsonRpcErrorOf, McpError, mcpError } from "./errors.ts";
import { checkHeadersMatchBody, paramPathsOf, type HeaderSource, type ParamPaths } from "./headers.ts";
import { isJsonObject, sha256Hex } from "./json.ts";
import { normalizeResourceTemplate } from "./resource-template.ts";
import { normalizeResourceUri } from "./resource-uri.ts";
import { type MessageLimits, type McpMessage, parseMessage } from "./message.ts";
import { type Joined, type ListKind, type ListName, ListsSeen, MAX_AWAITED, MAX_JOINED, type SessionLists } from "./lists-seen.ts";
import { MAX_TOOLS_PER_SERVER, type PinStore } from "./pins.ts";
import type { ToolDecision } from "./tool-filter.ts";
import { nearMember } from "./duplicate-keys.ts";
import { PINNED_MEMBERS, toolDefinitionText } from "./tool-pin.ts";

/** The JSON-RPC error code of a call the policy refused (in the range JSON-RPC leaves to servers). */
export const POLICY_DENIED = -32001;
/** The longest resource URI or prompt name an `mcp_denied` event carries. */
const MAX_LOGGED_TARGET = 2048;

/** Requests of one conversation waiting for their answers at once; more are refused (`mcp_too_many_pending`). */
export const MAX_PENDING = 1024;

export interface GateRule {
  readonly name: string;
  /** The rule's `mcp.tools` filter; null: every tool. */
  readonly tools: ((tool: string) => ToolDecision) | null;
  /** `mcp.resources`, over resource URIs; absent or null: every resource. */
  readonly resources?: ((uri: string) => ToolDecision) | null;
  /** `mcp.prompts`, over prompt names; absent or null: every prompt. */
  readonly prompts?: ((name: string) => ToolDecision) | null;
  /**
   * Set when no rule lets the conversation go on (a reload removed the rule, or the caller from
   * it): every request is refused with POLICY_DENIED, this reason and this message; a
   * notification is dropped; list results come back empty. Answers to requests let through before
   * still pass, and the client's answers to the server's requests.
   */
  readonly closed?: { readonly reason: string; readonly message: string } | null;
  /**
   * Per list kind, a text that differs when the filter differs (gate-rule.ts makes it from the
   * rule's `mcp:`), so a reload that leaves a filter as it was is not taken for a change
   * (`listsChanged`); absent: the filter function itself is compared.
   */
  readonly lists?: Readonly<Record<Kind, string>>;
}

/** What a rule decides over: its filter, and the server capability (initialize) offering its lists. */
const KINDS = {
  tool: { capability: "tools", filter: (r: GateRule) => r.tools },
  resource: { capability: "resources", filter: (r: GateRule) => r.resources ?? null },
  prompt: { capability: "prompts", filter: (r: GateRule) => r.prompts ?? null },
} as const satisfies Record<ListKind, unknown>;
type Kind = ListKind;

/**
 * Each list a result may hold (its member, ListName): the filter deciding its items, the member
 * naming an item, and the text the filter decides that name as (null: hidden). Resource
 * templates are decided by the resources filter (resource-template.ts).
 */
const LISTS = {
  tools: { kind: "tool", key: "name", decided: (name: string): string | null => name },
  resources: { kind: "resource", key: "uri", decided: normalizeResourceUri },
  resourceTemplates: { kind: "resource", key: "uriTemplate", decided: normalizeResourceTemplate },
  prompts: { kind: "prompt", key: "name", decided: (name: string): string | null => name },
} as const satisfies Record<ListName, { kind: Kind; key: string; decided: (name: string) => string | null }>;

/** A key of a result, or of a tool in it, that a case-insensitive client reads as a list (a pinned member) and the gate does not. */
const nearListName = nearMember(Object.keys(LISTS));
const nearPinnedMember = nearMember(PINNED_MEMBERS);

/** Requests naming a resource besides resources/read (which classify.ts reads). */
const URI_METHODS = new Set(["resources/subscribe", "resources/unsubscribe"]);

export interface GateContext {
  /** The caller's SPIFFE ID. */
  readonly caller: string;
  /** The server's SPIFFE ID, or for an intercepted third party the rule's name: the pin key. */
  readonly server: string;
  readonly connId: string | null;
  /** The rule in force, or a function giving it: asked at each message, so a reload applies to the conversation's next one. */
  readonly rule: GateRule | (() => GateRule);
}

export interface GateDeps {
  /** null: no pinning. */
  readonly pins: PinStore | null;
  audit(type: "tool_call" | "tool_definition_changed" | "mcp_denied", fields: Record<string, unknown>): void;
  /** Milliseconds, for durations. */
  now(): number;
  readonly limits?: Partial<MessageLimits>;
  /** SHA-256 hex of a text, for the arguments' hash; default WebCrypto's (asynchronous). A runtime's synchronous one saves a wake-up per call. */
  readonly sha256?: (text: string) => string;
  /**
   * The carrier sends the client the list-changed notifications of `listsChanged`: the answer to
   * the client's initialize then declares `listChanged: true` for each of tools, resources and
   * prompts the server offers, so a client that refreshes only on a server's word does.
   */
  readonly announcesLists?: boolean;
  /**
   * An HTTP carrier's records of the lists each session was sent (lists-seen.ts), shared by its
   * gates: a request's answer is recorded in the record of the session its Mcp-Session-Id names,
   * and the session's stream announces from it (`lists`). Absent: the gate keeps its own.
   */
  readonly sessions?: SessionLists;
}

export type ClientVerdict =
  | { readonly pass: true; readonly message: McpMessage }
  /** `answer` null: a refused notification, which gets no answer. `close`: the conversation takes no more requests (the rule is `closed`); a carrier that can end it does. */
  | { readonly pass: false; readonly answer: JsonRpcErrorResponse | null; readonly reason: string; readonly close?: true };

export type ServerVerdict =
  | { readonly kind: "same"; readonly message: McpMessage }
  | { readonly kind: "replace"; readonly message: McpMessage; readonly text: string }
  | { readonly kind: "invalid"; readonly error: McpError };

interface Pending {
  /** "initialize" for the client's initialize request (its answer declares the capabilities). */
  readonly method?: string;
  readonly tool: string | null;
  /** The rule that let it through, which its tool_call event names. */
  readonly rule: string;
  readonly argsSha256: string;
  readonly started: number;
  /** Where a list its answer carries is recorded (`lists`). */
  readonly seen: ListsSeen;
}

/**
 * The list-changed notification (MCP "Tools", "Resources", "Prompts": List Changed Notification)
 * of each list kind; resources/list_changed stands for the resource templates too (the spec has
 * no notification of their own).
 */
export const LIST_CHANGED: Readonly<Record<Kind, string>> = {
  tool: "notifications/tools/list_changed",
  resource: "notifications/resources/list_changed",
  prompt: "notifications/prompts/list_changed",
};

/** An initialize result whose `capabilities` say `listChanged: true` for each list the server offers; null when they already do (or it offers none). */
function declaringListChanged(result: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> | null {
  const caps = result.capabilities;
  if (!isJsonObject(caps)) return null;
  let out: Record<string, unknown> | null = null;
  for (const kind of Object.keys(KINDS) as Kind[]) {
    const capability = KINDS[kind].capability;
    const offered = caps[capability];
    if (!isJsonObject(offered) || offered.listChanged === true) continue;
    out ??= { ...caps };
    out[capability] = { ...offered, listChanged: true };
  }
  return out === null ? null : Object.freeze({ ...result, capabilities: Object.freeze(out) });
}

/** What a list of `kind` was filtered under: the rule's text for it, its filter function, or "closed". */
function filterOf(rule: GateRule, kind: Kind): unknown {
  if (rule.closed) return "closed";
  return rule.lists?.[kind] ?? KINDS[kind].filter(rule);
}

/** A result with `isError: true`, or an error answer. */
function answerIsError(m: McpMessage): boolean {
  return m.kind === "error" || (m.kind === "result" && isJsonObject(m.result) && m.result.isError === true);
}

export class McpGate {
  private readonly pending = new Map<JsonRpcId, Pending>();
  /** What the client was sent of each list through this gate, when no session's record holds it (`lists`, `listsChanged`). */
  private readonly own = new ListsSeen();
  /** The sessions' records this gate holds, by Mcp-Session-Id ("" for none), until it closes. */
  private readonly joined = new Map<string, Joined>();
  /** Per tool listed in this conversation, where its inputSchema puts each Mcp-Param-* header (at most MAX_TOOLS_PER_SERVER). */
  private readonly paramPaths = new Map<string, ParamPaths>();

  constructor(
    private readonly ctx: GateContext,
    private readonly deps: GateDeps,
  ) {}

  /** Why the conversation takes no more requests (the rule in force is `closed`), or null. */
  closedNow(): { readonly reason: string; readonly message: string } | null {
    return this.ruleNow().closed ?? null;
  }

  /** The rule in force now. */
  private ruleNow(): GateRule {
    const r = this.ctx.rule;
    return typeof r === "function" ? r() : r;
  }

  /**
   * The record of the lists sent in the conversation an HTTP request with `headers` belongs to:
   * its session's (GateDeps.sessions), shared with the carrier's other connections, or, without
   * `headers` or `sessions` or past the bounds (lists-seen.ts), this gate's own.
   */
  lists(headers?: HeaderSource): ListsSeen {
    const sessions = this.deps.sessions;
    if (sessions === undefined || headers === undefined) return this.own;
    const id = headers.get("mcp-session-id") ?? "";
    const had = this.joined.get(id);
    if (had !== undefined) return had.seen;
    if (this.joined.size >= MAX_JOINED) return this.own;
    const j = sessions.join(this.ctx.caller, this.ctx.server, id);
    if (j === null) return this.own;
    this.joined.set(id, j);
    return j.seen;
  }

  /** `headers`: the HTTP request's, checked against the body when it has Mcp-* headers (headers.ts). */
  async fromClient(bytes: Uint8Array | string, headers?: HeaderSource): Promise<ClientVerdict> {
    let m: McpMessage;
    const rule = this.ruleNow();
    try {
      m = parseMessage(bytes, { ...this.deps.limits, freeze: false });
      if (headers !== undefined && (m.kind === "request" || m.kind === "notification")) {
        const tool = m.method === "tools/call" && typeof m.params?.name === "string" ? m.params.name : null;
        const h = checkHeadersMatchBody(headers, m, tool === null ? undefined : this.paramPaths.get(tool));
        if (!h.ok) return { pass: false, answer: jsonRpcError(m.kind === "request" ? m.id : null, h.code, `tidegate: ${h.message}`), reason: "mcp_header_mismatch" };
      }
      // A notification is a request without an id: one of tools/call would run unanswered and
      // unchecked on a server that executes notifications. The client sends notifications/* only.
      if (m.kind === "notification" && !m.method.startsWith("notifications/")) {
        return { pass: false, answer: jsonRpcError(null, INVALID_REQUEST, `tidegate: a notification of ${JSON.stringify(m.method.slice(0, 64))} (a client's notifications are notifications/*)`), reason: "mcp_bad_notification" };
      }
      if (rule.closed && m.kind === "notification") return { pass: false, answer: null, reason: rule.closed.reason, close: true };
      if (m.kind !== "request") return { pass: true, message: m };
      if (this.pending.size >= MAX_PENDING) return { pass: false, answer: jsonRpcError(m.id, INVALID_REQUEST, `tidegate: over ${MAX_PENDING} requests waiting for their answers`), reason: "mcp_too_many_pending" };
      if (this.pending.has(m.id)) return { pass: false, answer: jsonRpcError(m.id, INVALID_REQUEST, `tidegate: request id ${JSON.stringify(m.id)} is already waiting for its answer`), reason: "mcp_duplicate_id" };
      const c = await classify(m, this.deps.sha256);
      const named: [Kind, string] | null =
        c.kind === "resource_read" ? ["resource", c.uri] : c.kind === "prompt_get" ? ["prompt", c.name] : c.kind === "completion" ? [c.of, c.target] : URI_METHODS.has(m.method) && typeof m.params?.uri === "string" ? ["resource", m.params.uri] : null;
      if (rule.closed) {
        const { reason, message } = rule.closed;
        if (c.kind === "tool_call") this.logCall(rule.name, c.tool, c.argsSha256, "deny", null, null, { reason });
        else if (named !== null) this.logDenied(rule.name, m.method, named[1], reason);
        return { pass: false, answer: jsonRpcError(m.id, POLICY_DENIED, message, { reason, rule: rule.name }), reason, close: true };
      }
      if (named !== null) {
        const [kind, raw] = named;
        // A completion's ref/resource names a URI or a URI template, decided as a listed template is.
        const what = kind === "resource" && KINDS.resource.filter(rule) !== null ? (c.kind === "completion" ? normalizeResourceTemplate : normalizeResourceUri)(raw) : raw;
        if (what === null) {
          const text = `tidegate: resource ${JSON.stringify(raw.slice(0, 256))} is not a URI rule ${rule.name} can decide (dot segments, encoded slashes, no scheme)`;
          this.logDenied(rule.name, m.method, raw, "resource_bad_uri");
          return { pass: false, answer: jsonRpcError(m.id, POLICY_DENIED, text, { reason: "resource_bad_uri", rule: rule.name }), reason: "resource_bad_uri" };
        }
        const d = KINDS[kind].filter(rule)?.(what) ?? "allowed";
        if (d !== "allowed") {
          const reason = `${kind}_${d === "denied" ? "denied" : "not_allowed"}`;
          const text = `tidegate: ${kind} ${JSON.stringify(what.slice(0, 256))} is ${d === "denied" ? "denied" : "not allowed"} by rule ${rule.name}`;
          this.logDenied(rule.name, m.method, what, reason);
          return { pass: false, answer: jsonRpcError(m.id, POLICY_DENIED, text, { reason, rule: rule.name, [kind]: what }), reason };
        }
      }
      if (c.kind !== "tool_call") {
        this.hold(m.id, { ...(m.method === "initialize" ? { method: "initialize" } : {}), tool: null, rule: rule.name, argsSha256: "", started: 0, seen: this.lists(headers) });
        return { pass: true, message: m };
      }
      const refusal = this.refusal(rule, c.tool);
      if (refusal !== null) {
        this.logCall(rule.name, c.tool, c.argsSha256, "deny", null, null, { reason: refusal.reason });
        return { pass: false, answer: jsonRpcError(m.id, POLICY_DENIED, refusal.message, { reason: refusal.reason, rule: rule.name, tool: c.tool }), reason: refusal.reason };
      }
      this.hold(m.id, { tool: c.tool, rule: rule.name, argsSha256: c.argsSha256, started: this.deps.now(), seen: this.lists(headers) });
      return { pass: true, message: m };
    } catch (e) {
      if (!(e instanceof McpError)) throw e;
      return { pass: false, answer: jsonRpcErrorOf(e), reason: e.code };
    }
  }

  /**
   * Request `id` waits for its answer. A call of the same session still awaited under that id
   * (its stream ended without the answer) is logged without one: an id is not used twice while
   * its request waits (JSON-RPC), so that answer is not coming.
   */
  private hold(id: JsonRpcId, p: Pending): void {
    const earlier = p.seen.awaited.get(id);
    if (earlier !== undefined) {
      p.seen.awaited.delete(id);
      earlier.unanswered();
    }
    this.pending.set(id, p);
  }

  private refusal(r: GateRule, tool: string): { reason: string; message: string } | null {
    const rule = r.name;
    const d = r.tools?.(tool) ?? "allowed";
    if (d === "denied") return { reason: "tool_denied", message: `tidegate: tool ${tool} is denied by rule ${rule}` };
    if (d === "not_allowed") return { reason: "tool_not_allowed", message: `tidegate: tool ${tool} is not allowed by rule ${rule}` };
    if (this.deps.pins?.waiting(this.ctx.server, tool) === true) {
      return { reason: "tool_changed", message: `tidegate: tool ${tool} changed since it was pinned and waits for an admin's approval (rule ${rule}; the change: tidegate mcp tools ${this.ctx.server} ${tool})` };
    }
    return null;
  }

  /** `stream`: the record of the session whose stream carried the message, for a list result that answers no request this gate passed (`lists`). */
  async fromServer(bytes: Uint8Array | string, stream?: ListsSeen): Promise<ServerVerdict> {
    let m: McpMessage;
    try {
      m = parseMessage(bytes, { ...this.deps.limits, freeze: false });
    } catch (e) {
      if (!(e instanceof McpError)) throw e;
      return { kind: "invalid", error: e };
    }
    if (m.kind !== "result" && m.kind !== "error") return { kind: "same", message: m };
    // An id a client would take for a waiting request's though it is not ("1" for 1: the TypeScript
    // SDK's client looks answers up by Number(id)): the gate would not log the answer it delivers.
    if (typeof m.id === "string" && !this.pending.has(m.id) && !stream?.awaited.has(m.id)) {
      const n = Number(m.id);
      if (this.pending.has(n) || stream?.awaited.has(n) === true) return { kind: "invalid", error: mcpError("mcp_invalid_request", "an answer whose id is a string where its request's was a number", n) };
    }
    const p = this.pending.get(m.id ?? "");
    if (m.id !== null) this.pending.delete(m.id);
    if (p !== undefined && p.tool !== null) this.logCall(p.rule, p.tool, p.argsSha256, "allow", this.deps.now() - p.started, answerIsError(m));
    else if (p === undefined && m.id !== null && stream !== undefined) {
      // the answer to a call whose own stream ended without it, on another stream of its session
      const awaited = stream.awaited.get(m.id);
      if (awaited !== undefined) {
        stream.awaited.delete(m.id);
        awaited.answered(answerIsError(m));
      }
    }
    if (m.kind !== "result" || !isJsonObject(m.result)) return { kind: "same", message: m };
    // A list under a near-miss key (`Tools`, `toolſ`) would reach a case-insensitive client (Go's
    // encoding/json) unfiltered: refused like a message that does not parse.
    const near = nearListName(m.result);
    if (near !== null) return { kind: "invalid", error: mcpError("mcp_invalid_result", `a result with the key ${JSON.stringify(near.slice(0, 64))}, which another parser could read as a list it is not`, m.id) };
    let result: Readonly<Record<string, unknown>> = m.result;
    let changed = false;
    if (p?.method === "initialize" && this.deps.announcesLists === true) {
      const declared = declaringListChanged(result);
      if (declared !== null) {
        result = declared;
        changed = true;
      }
    }
    const rule = this.ruleNow();
    const seen = p?.seen ?? stream ?? this.own;
    for (const list of Object.keys(LISTS) as ListName[]) {
      const filtered = await this.filterList(rule, list, result, seen);
      if (filtered !== null) {
        result = filtered;
        changed = true;
      }
    }
    const message = changed ? Object.freeze({ kind: "result" as const, id: m.id, result: Object.freeze(result) }) : m;
    return changed ? { kind: "replace", message, text: JSON.stringify({ jsonrpc: "2.0", id: m.id, result }) } : { kind: "same", message };
  }

  /**
   * `result` without the items of `list` the rule (or, for tools, the pins) hides; null when
   * nothing was removed or it has no such list. Without a filter for it, only items without
   * their name are removed (and, for tools, those not pinned); with one, an item whose name
   * cannot be decided (LISTS `decided`) is removed too.
   */
  private async filterList(rule: GateRule, list: ListName, result: Readonly<Record<string, unknown>>, seen: ListsSeen): Promise<Readonly<Record<string, unknown>> | null> {
    const { kind, key, decided } = LISTS[list];
    const listed = result[list];
    if (!Array.isArray(listed)) return null;
    seen.listed.set(list, filterOf(rule, kind));
    if (list === "tools") seen.unpinned.clear();
    if (rule.closed) return listed.length === 0 ? null : Object.freeze({ ...result, [list]: Object.freeze([]) });
    const decide = KINDS[kind].filter(rule);
    if (decide === null && list !== "tools" && listed.every((t) => isJsonObject(t) && typeof t[key] === "string")) return null;
    const kept: unknown[] = [];
    for (const t of listed as readonly unknown[]) {
      if (!isJsonObject(t) || typeof t[key] !== "string") continue;
      // A tool whose pinned member is spelled so only a case-insensitive client reads it
      // (`Description`): its pin would not cover what that client acts on.
      if (list === "tools" && nearPinnedMember(t) !== null) continue;
      const raw = t[key] as string;
      // A tool no call could name (classify.ts TOOL_NAME, MCP's tool name syntax) is not shown, nor pinned (a 4 MiB name).
      if (list === "tools" && !TOOL_NAME.test(raw)) continue;
      const name = decide === null ? raw : decided(raw);
      if (name === null || (decide?.(name) ?? "allowed") !== "allowed") continue;
      if (list === "tools" && this.deps.pins !== null && !(await this.pinned(rule.name, name, t))) {
        if (seen.unpinned.size < MAX_TOOLS_PER_SERVER) seen.unpinned.add(name);
        continue;
      }
      if (list === "tools" && (this.paramPaths.has(name) || this.paramPaths.size < MAX_TOOLS_PER_SERVER)) this.paramPaths.set(name, paramPathsOf(t.inputSchema));
      kept.push(t);
    }
    return kept.length === listed.length ? null : Object.freeze({ ...result, [list]: Object.freeze(kept) });
  }

  private async pinned(rule: string, name: string, tool: unknown): Promise<boolean> {
    const text = toolDefinitionText(tool);
    const hash = await sha256Hex(text);
    const v = this.deps.pins!.see(this.ctx.server, name, hash, text);
    if (v.state === "pinned") return true;
    if (v.news) this.deps.audit("tool_definition_changed", { server_id: this.ctx.server, tool: name, old_sha256: v.old, new_sha256: hash, rule });
    return false;
  }

  /**
   * The list-changed notifications the client should get now (LIST_CHANGED): one per list kind
   * with a list the server sent it (in `seen`: this gate's own, or an HTTP session's from `lists`)
   * whose filter differs in the rule in force from the one it was filtered under (a reload, a
   * registration change), and tools/list_changed when a tool the last tools list left out as not
   * pinned has been approved since. Each change is said once, and each notification at most once
   * per call: resources and resource templates both sent, a change of `mcp.resources` says
   * resources/list_changed once. The carrier sends them (the server is not asked: its list is the
   * same, what the client may see of it is not).
   */
  listsChanged(seen: ListsSeen = this.own): string[] {
    if (seen.listed.size === 0) return [];
    const rule = this.ruleNow();
    const out = new Set<string>();
    for (const [list, was] of seen.listed) {
      const kind = LISTS[list].kind;
      const now = filterOf(rule, kind);
      const approved = list === "tools" && this.deps.pins !== null && [...seen.unpinned].some((t) => !this.deps.pins!.waiting(this.ctx.server, t));
      if (now === was && !approved) continue;
      seen.listed.set(list, now);
      if (approved) seen.unpinned.clear();
      out.add(LIST_CHANGED[kind]);
    }
    return [...out];
  }

  /** True while request `id` waits for its answer. */
  waiting(id: JsonRpcId): boolean {
    return this.pending.has(id);
  }

  /**
   * The stream that should have carried request `id`'s answer ended without it (an HTTP answer
   * that was not a JSON-RPC one, a 5xx, an event that could not be read, a stream the server
   * closed for the client to resume): it waits no more on this conversation (`unanswered`).
   */
  settle(id: JsonRpcId): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    this.unanswered(id, p);
  }

  /**
   * A tool call whose answer will not come where it was awaited. In a session's shared record it
   * is awaited there (lists-seen.ts `awaited`): another stream of the session may bring the answer,
   * a GET resuming the first, and the call is logged then, with its duration and `resumed: true`,
   * or without an answer once the session's record ends (lists-seen.ts). Otherwise it is logged
   * without an answer now (`outcome: "no_answer"`).
   */
  private unanswered(id: JsonRpcId, p: Pending): void {
    if (p.tool === null) return;
    const { rule, tool, argsSha256, started, seen } = p;
    const noAnswer = () => this.logCall(rule, tool, argsSha256, "allow", null, null, { outcome: "no_answer" });
    if (seen === this.own || seen.awaited.size >= MAX_AWAITED) return noAnswer();
    seen.awaited.set(id, { answered: (isError) => this.logCall(rule, tool, argsSha256, "allow", this.deps.now() - started, isError, { resumed: true }), unanswered: noAnswer });
  }

  /**
   * The connection ended: calls still waiting for an answer are awaited by their sessions'
   * records or logged without one (`unanswered`), and the records are let go (a session's record
   * that no connection holds waits for its client to resume, then logs what it still awaits:
   * lists-seen.ts). `final`: the carrier answered the client itself (a refusal, a timeout's 504),
   * so no answer will be resumed: the calls still waiting are logged without one now.
   */
  close(final = false): void {
    for (const [id, p] of this.pending) {
      if (final && p.tool !== null) this.logCall(p.rule, p.tool, p.argsSha256, "allow", null, null, { outcome: "no_answer" });
      else this.unanswered(id, p);
    }
    this.pending.clear();
    for (const j of this.joined.values()) j.release();
    this.joined.clear();
  }

  /** A refused resource or prompt request; a URI without its query or fragment, which may carry a credential. */
  private logDenied(rule: string, method: string, target: string, reason: string): void {
    const cut = target.search(/[?#]/);
    const shown = (cut < 0 ? target : target.slice(0, cut)).slice(0, MAX_LOGGED_TARGET);
    this.deps.audit("mcp_denied", { conn_id: this.ctx.connId, caller_id: this.ctx.caller, server_id: this.ctx.server, method, target: shown.length > 0 ? shown : "(empty)", rule, reason });
  }

  private logCall(rule: string, tool: string, argsSha256: string, decision: "allow" | "deny", duration: number | null, isError: boolean | null, extra: Record<string, unknown> = {}): void {
    this.deps.audit("tool_call", {
      conn_id: this.ctx.connId,
      caller_id: this.ctx.caller,
      server_id: this.ctx.server,
      tool,
      args_sha256: argsSha256,
      decision,
      rule,
      duration_ms: duration === null ? null : Math.max(0, Math.round(duration * 1000) / 1000),
      is_error: isError,
      ...extra,
    });
  }
}
