/**
 * The federated trust domains' bundles as the agent holds them (docs/federation.md): what the
 * server's sync answer hands over, each for its own trust domain and with the time after which
 * it must not be trusted, kept in `<state-dir>/agent/federated.json` (0644, public material) so a
 * restarted agent that cannot reach its server still verifies peers of those trust domains until
 * their expiry.
 *
 * Refused as a malformed answer (`server_bad_answer`, the held bundles kept): a trust domain that
 * does not parse, is ours or comes twice; a bundle that is not SPIFFE JWKS or holds no X.509
 * root; an expiry that is not a time.
 */
import { existsSync, readFileSync } from "node:fs";
import { TrustDomain, formatJwksBundle, type Bundle } from "../spiffe/index.ts";
import { AgentError } from "./errors.ts";
import { readServerBundle } from "./node-svid.ts";
import type { StateFiles } from "./state-files.ts";

export interface FederatedHeld {
  readonly bundle: Bundle;
  /** Epoch ms; from then on the trust domain is no longer trusted. */
  readonly expiresAt: number;
}

export type FederatedMap = ReadonlyMap<string, FederatedHeld>;

export interface FederatedItem {
  readonly trust_domain: string;
  readonly bundle: unknown;
  readonly expires_at: string;
}

const FILE = "federated.json";

/** The sync answer's `federated` list as bundles by trust domain name. */
export async function readFederated(items: readonly FederatedItem[], own: TrustDomain, what: string): Promise<Map<string, FederatedHeld>> {
  const out = new Map<string, FederatedHeld>();
  for (const item of items) {
    let td: TrustDomain;
    try {
      td = TrustDomain.parse(item.trust_domain);
    } catch (e) {
      throw new AgentError("server_bad_answer", `agent: the answer to ${what} names federated trust domain ${JSON.stringify(String(item.trust_domain).slice(0, 64))}, which does not parse`, { cause: e });
    }
    if (td.equals(own)) throw new AgentError("server_bad_answer", `agent: the answer to ${what} hands over a federated bundle for our own trust domain ${td.name}`);
    if (out.has(td.name)) throw new AgentError("server_bad_answer", `agent: the answer to ${what} hands over ${td.name} twice`);
    const expiresAt = Date.parse(item.expires_at);
    if (!Number.isFinite(expiresAt)) throw new AgentError("server_bad_answer", `agent: the answer to ${what} gives ${td.name} an expiry that is not a time`);
    out.set(td.name, { bundle: await readServerBundle(td, item.bundle, `${what} (federated ${td.name})`), expiresAt });
  }
  return out;
}

/** What changed from `before` to `after`: bundles new or different, and trust domains gone. */
export function federatedChanges(before: FederatedMap, after: FederatedMap): { updated: string[]; dropped: string[]; any: boolean } {
  const updated = [...after].filter(([td, h]) => !before.get(td)?.bundle.equals(h.bundle)).map(([td]) => td);
  const dropped = [...before.keys()].filter((td) => !after.has(td));
  const expiryMoved = [...after].some(([td, h]) => before.get(td)?.expiresAt !== h.expiresAt);
  return { updated, dropped, any: updated.length > 0 || dropped.length > 0 || expiryMoved };
}

export async function persistFederated(files: StateFiles, held: FederatedMap): Promise<void> {
  const items: FederatedItem[] = [];
  for (const [td, h] of held) items.push({ trust_domain: td, bundle: JSON.parse(await formatJwksBundle(h.bundle)), expires_at: new Date(h.expiresAt).toISOString() });
  files.writePublic(FILE, JSON.stringify(items, null, 2) + "\n");
}

/** What an earlier run kept; an unreadable file counts as nothing held (the next sync refills it). */
export async function loadFederated(files: StateFiles, own: TrustDomain): Promise<Map<string, FederatedHeld>> {
  const path = files.path(FILE);
  if (!existsSync(path)) return new Map();
  try {
    const items = JSON.parse(readFileSync(path, "utf8")) as FederatedItem[];
    if (!Array.isArray(items)) return new Map();
    return await readFederated(items, own, FILE);
  } catch {
    return new Map();
  }
}

/** The bundles whose expiry is after `now`. */
export function liveFederated(held: FederatedMap, now: number): Bundle[] {
  return [...held.values()].filter((h) => h.expiresAt > now).map((h) => h.bundle);
}
