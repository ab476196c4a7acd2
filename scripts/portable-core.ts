/**
 * The portable core (../shared/STYLE.md point 2): code that uses web-standard APIs and npm
 * packages only, whose tests run under both Bun and Deno. Folders, or single files where a
 * folder mixes portable logic with runtime adapters (attestation's matching rule, say).
 */
export const PORTABLE_PATHS: readonly string[] = [
  "src/spiffe",
  "src/x509",
  "src/policy",
  "src/proxy/peek",
  "src/http1",
  "src/proxy/proxy-v2.ts",
  "src/proxy/proxy-v2.test.ts",
  "src/attest/match.ts",
  "src/attest/match.test.ts",
  "src/attest/errors.ts",
  "src/attest/selector.ts",
  "src/attest/selector.test.ts",
  "src/audit/format",
  "src/audit/otlp",
  "src/mcp",
];

/** Files under those folders that may touch the runtime (none yet): adapters live elsewhere. */
export const PORTABLE_EXCEPTIONS: readonly string[] = [];
