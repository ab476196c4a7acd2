/**
 * `secret_changed` audit events (docs/audit.md): `tidegate secret set|rm` runs as its own process
 * and writes the store (src/secrets/); the agent notices each change by the store's names and
 * their `changed_at` times, and records the secret's name and whether it was set or removed, never
 * a value (the store's list holds none). A store that cannot be read is skipped until it can. The
 * enforcer looks every 2 s, and at once when the command tells it (Enforcer.secretsChanged).
 */
import type { Audit } from "../audit/sink/audit-log.ts";
import { SecretStore, secretsDir } from "../secrets/index.ts";

export class SecretWatch {
  #known: Map<string, string> | null = null;
  readonly #dir: string;

  constructor(
    stateDir: string,
    private readonly audit: Audit,
  ) {
    this.#dir = secretsDir(stateDir);
    this.check(); // what is there at start is the baseline, not a change
  }

  /** Compares the store with the last look; one event per name set or removed since. */
  check(): void {
    let now: Map<string, string>;
    try {
      now = new Map(SecretStore.open(this.#dir).list().map((s) => [s.name, s.changedAt]));
    } catch {
      return;
    }
    const before = this.#known;
    this.#known = now;
    if (before === null) return;
    for (const [name, changedAt] of now) {
      if (before.get(name) !== changedAt) this.audit.emit("secret_changed", { name, change: "set", changed_at: changedAt });
    }
    for (const name of before.keys()) if (!now.has(name)) this.audit.emit("secret_changed", { name, change: "removed" });
  }
}
