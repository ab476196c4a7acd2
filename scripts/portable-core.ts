/**
 * The portable core (../shared/STYLE.md point 2): folders whose code uses web-standard APIs and npm
 * packages only, whose tests run under both Bun and Deno. Later folders (policy, the parsing half
 * of mcp, the event format of audit) join this list as they land.
 */
export const PORTABLE_DIRS: readonly string[] = ["src/spiffe", "src/x509"];

/** Files in those folders that may touch the runtime (none yet): adapters live elsewhere. */
export const PORTABLE_EXCEPTIONS: readonly string[] = [];
