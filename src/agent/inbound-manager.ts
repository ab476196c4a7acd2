/**
 * Keeps one inbound listener per `inbound[]` rule of the policy in force (src/proxy/
 * inbound-listener.ts). `sync()` runs after every policy load and every second:
 * - a rule whose SPIFFE ID the agent holds no valid SVID for waits (`inbound_waiting`, once) and
 *   starts as soon as one arrives (`inbound_listening`);
 * - an address that cannot be bound is retried at each sync (`inbound_failed`, once per error);
 * - a rule that changed but kept its listen address and `id` is swapped into the running listener
 *   (new connections see the new `allow`, `forward` and `proxy_protocol`); one whose address or
 *   `id` changed is restarted; a rule that is gone stops its listener (`inbound_stopped`);
 *   connections in flight go on under the rule in force: where requests are parsed (`mcp:`,
 *   `forward_client_cert`) a narrowed `mcp:` or `allow` applies to their next request and a
 *   removed or restarted rule's take no more requests; where bytes pass unparsed, a connection
 *   whose client the rule no longer allows, or whose rule is removed or restarted, is ended at
 *   once (`rule_removed`, `client_not_allowed`, outcome `terminated`).
 * A stopping agent calls `stopAccepting` (every port closed, sync does nothing more), waits while
 * `inFlight` counts connections of any listener, stopped ones included, and `endAll` cuts the rest;
 * then `stop` logs the tool calls the listeners' MCP sessions still await (a stopped listener is
 * kept until its connections have ended and no session of it waits for its client to resume).
 */
import type { Audit } from "../audit/sink/audit-log.ts";
import type { InboundRule, Policy } from "../policy/model.ts";
import type { Logger } from "../runtime/log.ts";
import type { IdentitySource } from "../proxy/identity-source.ts";
import { InboundListener } from "../proxy/inbound-listener.ts";
import { PeerVerifier } from "../proxy/peer-verifier.ts";
import { NONE_ENDED, sumRechecked, type Rechecked } from "../proxy/in-flight.ts";
import type { PinStore } from "../mcp/index.ts";
import type { ProxySettings } from "../policy/model.ts";

export interface InboundState {
  readonly rule: string;
  readonly listen: string;
  readonly id: string;
  readonly state: "listening" | "waiting" | "failed";
  readonly detail?: string;
}

interface Slot {
  rule: InboundRule;
  listener: InboundListener | null;
  /** What was last logged for a slot that is not listening, so it is said once. */
  said: string | null;
}

/** Why a listener waits: what `tidegate status` shows. */
export const NO_SVID = "no SVID for its id yet: an entry of this node with that SPIFFE ID (tidegate up makes one)";

function keyOf(r: InboundRule): string {
  return `${r.listen.host}|${r.listen.port}|${r.id.toString()}`;
}

function listenText(r: InboundRule): string {
  return `${r.listen.host}:${r.listen.port}`;
}

/** Why `listen` could not be bound, as `tidegate status` shows it: the errno code, and for the usual ones what it means here. */
export function bindProblem(e: unknown, listen: string): string {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== "string") return e instanceof Error ? e.message : String(e);
  const why: Record<string, string> = {
    EADDRINUSE: `another program listens on ${listen}`,
    EADDRNOTAVAIL: `no interface of this host has the address of ${listen}`,
    EACCES: `not allowed to bind ${listen}`,
  };
  return why[code] !== undefined ? `${code}: ${why[code]}; retried every second` : code;
}

export class InboundManager {
  private readonly slots = new Map<string, Slot>();
  private readonly verifier = new PeerVerifier();
  /** Listeners stopped while connections of theirs were still open. */
  private retired: InboundListener[] = [];
  private stopping = false;

  constructor(private readonly o: { identity: IdentitySource; logger: Logger; audit: Audit; pins?: PinStore; accepting?: () => boolean; timeouts?: () => ProxySettings }) {}

  /** `removed`: the policy dropped the listener's rule (not a stopping agent): its MCP conversations take no more requests. */
  private retire(l: InboundListener, removed = false): void {
    if (removed) l.remove();
    else l.stop();
    this.retired.push(l);
  }

  /** Brings the listeners in line with `policy`; resolves with what the listeners whose rule changed or went ended (`InboundListener.recheck`). */
  sync(policy: Policy | null): Promise<Rechecked> {
    if (this.stopping) return Promise.resolve(NONE_ENDED);
    this.retired = this.retired.filter((l) => l.connections > 0 || l.sessionsWaiting > 0);
    const wanted = new Map((policy?.inbound ?? []).map((r) => [keyOf(r), r]));
    const changed: InboundListener[] = [];
    for (const [key, slot] of this.slots) {
      if (wanted.has(key)) continue;
      if (slot.listener !== null) {
        this.retire(slot.listener, true);
        changed.push(slot.listener);
      }
      this.slots.delete(key);
      this.o.logger.info("inbound_stopped", { rule: slot.rule.name, listen: listenText(slot.rule) });
    }
    for (const [key, rule] of wanted) {
      const slot = this.slots.get(key) ?? { rule, listener: null, said: null };
      this.slots.set(key, slot);
      slot.rule = rule;
      if (slot.listener !== null) {
        if (slot.listener.rule !== rule) changed.push(slot.listener);
        slot.listener.rule = rule;
        continue;
      }
      this.start(slot);
    }
    return changed.length === 0 ? Promise.resolve(NONE_ENDED) : Promise.all(changed.map((l) => l.recheck())).then(sumRechecked);
  }

  private start(slot: Slot): void {
    const r = slot.rule;
    const fields = { rule: r.name, listen: listenText(r), id: r.id.toString() };
    const credential = this.o.identity.svid(r.id.toString());
    if (credential === null) {
      if (slot.said !== "no_svid") this.o.logger.warn("inbound_waiting", { ...fields, reason: "no_svid", detail: "the agent holds no SVID for this id yet (an entry of this node with this SPIFFE ID)" });
      slot.said = "no_svid";
      return;
    }
    try {
      slot.listener = new InboundListener(r, credential, { identity: this.o.identity, verifier: this.verifier, logger: this.o.logger, audit: this.o.audit, ...(this.o.pins !== undefined ? { pins: this.o.pins } : {}), ...(this.o.accepting !== undefined ? { accepting: this.o.accepting } : {}), ...(this.o.timeouts !== undefined ? { timeouts: this.o.timeouts } : {}) });
      slot.said = null;
      this.o.logger.info("inbound_listening", fields);
    } catch (e) {
      const detail = bindProblem(e, fields.listen);
      if (slot.said !== detail) this.o.logger.error("inbound_failed", { ...fields, detail, effect: "retried every second" });
      slot.said = detail;
    }
  }

  status(): InboundState[] {
    return [...this.slots.values()].map((s) => ({
      rule: s.rule.name,
      listen: listenText(s.rule),
      id: s.rule.id.toString(),
      state: s.listener !== null ? "listening" : s.said === "no_svid" ? "waiting" : "failed",
      ...(s.listener === null && s.said !== null ? { detail: s.said === "no_svid" ? NO_SVID : s.said } : {}),
    }));
  }

  /** Every listener's `recheck`, stopped ones' included (a bundle change: clients whose authority is gone). */
  recheckAll(): Promise<Rechecked> {
    const all = [...[...this.slots.values()].flatMap((s) => (s.listener !== null ? [s.listener] : [])), ...this.retired];
    return Promise.all(all.map((l) => l.recheck())).then(sumRechecked);
  }

  /** Closes every listener's port for good; their connections go on. */
  stopAccepting(): void {
    this.stopping = true;
    for (const s of this.slots.values()) if (s.listener !== null) this.retire(s.listener);
    this.slots.clear();
  }

  /** Connections of every listener, stopped ones included, whose conn_close is not written yet. */
  inFlight(): number {
    return [...this.slots.values()].reduce((n, s) => n + (s.listener?.connections ?? 0), 0) + this.retired.reduce((n, l) => n + l.connections, 0);
  }

  /** Cuts every connection still open, each recorded with `fields`; how many. */
  endAll(fields: Record<string, unknown>): number {
    return [...this.slots.values()].reduce((n, s) => n + (s.listener?.endAll(fields) ?? 0), 0) + this.retired.reduce((n, l) => n + l.endAll(fields), 0);
  }

  /** Closes every port, and logs what the listeners' MCP sessions still await without an answer (lists-seen.ts). */
  stop(): void {
    this.stopAccepting();
    for (const l of this.retired) l.closeSessions();
  }
}
