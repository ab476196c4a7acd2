/**
 * The `ca:` and `bundle:` settings of server.yaml (docs/server-api.md), in seconds.
 *
 * Guaranteed after `checkCaSettings` (else `ca_bad_settings`, naming the setting):
 * - every TTL is a positive whole number, and signing_ttl <= root_ttl;
 * - refresh_hint is a whole number >= 0 and shorter than root_ttl (a new root must outlive its wait);
 * - root_rotate_before is 0 (never rotate the root by itself) or lies strictly between
 *   refresh_hint and root_ttl, so that a root published that long before the active one expires
 *   is activated (one refresh hint later) while the old root is still valid: no gap.
 */
import { CaError } from "./errors.ts";

export interface CaSettings {
  readonly rootTtlSeconds: number;
  readonly signingTtlSeconds: number;
  /** 0: the root is rotated only by `rotate-ca --root`. */
  readonly rootRotateBeforeSeconds: number;
  /** The bundle's spiffe_refresh_hint; a new root is published at least this long before use. */
  readonly refreshHintSeconds: number;
}

/** The defaults of docs/server-api.md (8760h, 24h, 720h, 5m). */
export const DEFAULT_CA_SETTINGS: CaSettings = Object.freeze({
  rootTtlSeconds: 8760 * 3600,
  signingTtlSeconds: 24 * 3600,
  rootRotateBeforeSeconds: 720 * 3600,
  refreshHintSeconds: 300,
});

function whole(value: number, name: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new CaError("ca_bad_settings", `ca: ${name} must be a whole number of seconds >= ${min}, got ${value}`);
  }
}

export function checkCaSettings(s: CaSettings): CaSettings {
  whole(s.rootTtlSeconds, "root_ttl", 1);
  whole(s.signingTtlSeconds, "signing_ttl", 1);
  whole(s.rootRotateBeforeSeconds, "root_rotate_before", 0);
  whole(s.refreshHintSeconds, "refresh_hint", 0);
  if (s.signingTtlSeconds > s.rootTtlSeconds) {
    throw new CaError("ca_bad_settings", `ca: signing_ttl (${s.signingTtlSeconds}s) is longer than root_ttl (${s.rootTtlSeconds}s)`);
  }
  if (s.refreshHintSeconds >= s.rootTtlSeconds) {
    throw new CaError("ca_bad_settings", `ca: refresh_hint (${s.refreshHintSeconds}s) must be shorter than root_ttl (${s.rootTtlSeconds}s)`);
  }
  const before = s.rootRotateBeforeSeconds;
  if (before !== 0 && (before <= s.refreshHintSeconds || before >= s.rootTtlSeconds)) {
    throw new CaError(
      "ca_bad_settings",
      `ca: root_rotate_before (${before}s) must be 0 or longer than refresh_hint (${s.refreshHintSeconds}s) and shorter than root_ttl (${s.rootTtlSeconds}s)`,
    );
  }
  return s;
}
