/**
 * Operational log: one JSON object per line on stderr, `{"time", "level", "event", ...fields}`.
 * Events are snake_case names (node_attested, svid_issued, entry_not_for_node...) that the audit
 * trail will carry over. Callers pass only non-secret fields: no token, key or secret value is
 * ever handed to a logger (tests search the output for them).
 */
export type Level = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: Level, event: string, fields?: Readonly<Record<string, unknown>>): void;
  info(event: string, fields?: Readonly<Record<string, unknown>>): void;
  warn(event: string, fields?: Readonly<Record<string, unknown>>): void;
  error(event: string, fields?: Readonly<Record<string, unknown>>): void;
}

const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(opts: { write?: (line: string) => void; level?: Level; now?: () => Date; base?: Record<string, unknown> } = {}): Logger {
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  const min = ORDER[opts.level ?? "info"];
  const now = opts.now ?? (() => new Date());
  const log = (level: Level, event: string, fields: Readonly<Record<string, unknown>> = {}) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ time: now().toISOString(), level, event, ...opts.base, ...fields }) + "\n");
  };
  return {
    log,
    info: (e, f) => log("info", e, f),
    warn: (e, f) => log("warn", e, f),
    error: (e, f) => log("error", e, f),
  };
}

/** A logger that keeps lines in memory, for tests. */
export function memoryLogger(): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({ write: (l) => void lines.push(JSON.parse(l)), level: "debug" });
  return Object.assign(logger, { lines });
}
