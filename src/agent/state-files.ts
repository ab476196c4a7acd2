/**
 * The agent's state on disk, `<state-dir>/agent/` (docs/server-api.md, "Agent"):
 *
 *   agent/            0700
 *     agent.json      0644  {server, api_port, trust_domain, node, spiffe_id}
 *     bundle.json     0644  the trust bundle, SPIFFE JWKS
 *     node.key        0600  the node SVID's private key, PKCS#8 PEM
 *     node.pem        0644  the node SVID chain, leaf first
 *     svids/          0700
 *       <entry>.key   0600  a workload SVID's private key
 *       <entry>.pem   0644  its chain
 *     intercept/      0700  the interception CA (src/intercept/ca-files.ts)
 *       ca.key        0600
 *       ca.pem        0644
 *
 * Every file is written whole to a temporary name opened with O_EXCL and the final mode, synced,
 * then renamed over the old one: a reader (or a crash) sees the old file or the new one, never a
 * part, and a key is never readable by anyone but root, not even for an instant. The key is
 * written before its certificate, so a crash between the two leaves a pair whose mismatch the
 * loader detects (svid-cache.ts) and repairs by asking again.
 */
import { writeAtomic } from "../runtime/atomic-write.ts";
import { chmodSync, mkdirSync, readFileSync, readdirSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { AgentError } from "./errors.ts";

export interface AgentJson {
  readonly server: string;
  readonly api_port: number;
  readonly trust_domain: string;
  readonly node: string;
  readonly spiffe_id: string;
}

/** Entry IDs become file names: a conservative alphabet, no dot files. */
const ENTRY_ID = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

export function checkEntryId(id: string): string {
  if (!ENTRY_ID.test(id)) throw new AgentError("entry_id_bad", `agent: the server named entry ${JSON.stringify(id.slice(0, 64))}, which cannot be a file name`);
  return id;
}

export class StateFiles {
  readonly dir: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "agent");
  }

  /** Creates agent/ and agent/svids/ (0700), fixing the mode of existing ones. */
  ensure(): void {
    for (const d of [this.dir, join(this.dir, "svids")]) {
      mkdirSync(d, { recursive: true, mode: 0o700 });
      chmodSync(d, 0o700);
    }
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  read(name: string): string | null {
    try {
      return readFileSync(this.path(name), "utf8");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return null;
      throw new AgentError("state_unreadable", `agent: cannot read ${JSON.stringify(this.path(name))}: ${(e as { code?: string }).code ?? String(e)}`);
    }
  }

  /** Writes `text` to `name` atomically with `mode` (0600 for keys). */
  write(name: string, text: string, mode: number): void {
    writeAtomic(this.path(name), text, mode);
  }

  writeKey(name: string, pem: string): void {
    this.write(name, pem, 0o600);
  }

  writePublic(name: string, text: string): void {
    this.write(name, text, 0o644);
  }

  remove(name: string): void {
    try {
      unlinkSync(this.path(name));
    } catch {
      // already gone
    }
  }

  readAgentJson(): AgentJson | null {
    const text = this.read("agent.json");
    if (text === null) return null;
    try {
      const j = JSON.parse(text) as Partial<AgentJson>;
      if (typeof j.server === "string" && typeof j.api_port === "number" && typeof j.trust_domain === "string" && typeof j.node === "string" && typeof j.spiffe_id === "string") {
        return j as AgentJson;
      }
    } catch {
      // reported below
    }
    throw new AgentError("state_unreadable", `agent: ${JSON.stringify(this.path("agent.json"))} is not the agent's state (remove the folder and join again)`);
  }

  writeAgentJson(j: AgentJson): void {
    this.writePublic("agent.json", JSON.stringify(j, null, 2) + "\n");
  }

  /** Entry IDs that have a chain under svids/. */
  svidIds(): string[] {
    let names: string[];
    try {
      names = readdirSync(join(this.dir, "svids"));
    } catch {
      return [];
    }
    return names.filter((n) => n.endsWith(".pem")).map((n) => n.slice(0, -4)).filter((id) => ENTRY_ID.test(id)).sort();
  }
}
