/**
 * The protocol of `<run-dir>/run.sock` (docs/capture.md, "`tidegate run` for group members"):
 * newline-delimited JSON, one request per connection.
 *
 * 1. The client sends the request line with sendmsg(2); its descriptors 0, 1 and 2 travel with
 *    the first byte (SCM_RIGHTS): `{"workload", "user"?, "allow_root"?, "command", "env", "cwd"}`.
 * 2. The agent answers `{"error": {"code", "message"}}` and closes, or starts the command and,
 *    when it has ended, answers `{"exit": N}` or `{"signal": "SIGTERM"}`. Before that answer it
 *    may send `{"notice": TEXT}` lines for the caller's user (a workload without an identity).
 * 3. Meanwhile the client may send `{"signal": NAME}` lines (SIGINT, SIGTERM, SIGHUP, SIGQUIT).
 *
 * Rejected: a request line over MAX_REQUEST bytes, one that is not JSON, has a field of the wrong
 * type or one not listed above, an empty command, an env entry without `NAME=`, a relative cwd,
 * any string with a NUL.
 */
import { TidegateError } from "../errors.ts";
import { didYouMean, nearest } from "../policy/nearest.ts";

export type RunProtocolErrorCode = "run_bad_request" | "run_request_too_large" | "run_bad_answer";

export class RunProtocolError extends TidegateError<RunProtocolErrorCode> {}

/** A request line is refused beyond this many bytes (newline excluded). */
export const MAX_REQUEST = 1024 * 1024;
/** A later line (a signal) is dropped beyond this many bytes. */
export const MAX_LINE = 4096;

export const RUN_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"] as const;
export type RunSignal = (typeof RUN_SIGNALS)[number];

export interface RunRequest {
  readonly workload: string;
  /** null: the workload's configured user. */
  readonly user: string | null;
  /** Root callers only: a root target runs uncontained. */
  readonly allowRoot: boolean;
  readonly command: readonly string[];
  /** The caller's environment, `NAME=VALUE` each. */
  readonly env: readonly string[];
  readonly cwd: string;
  /**
   * `--mcp-stdio`: the agent sits on the command's stdin and stdout (newline-delimited JSON-RPC)
   * and applies the `stdio[]` rule for the caller and the workload (docs/mcp.md).
   */
  readonly mcpStdio?: boolean;
  /**
   * The caller's stdin was its terminal and descriptor 0 is a pseudo-terminal the caller made for
   * this run (../runtime/pty.ts): the launcher makes it the command's controlling terminal.
   */
  readonly tty?: boolean;
}

export type RunAnswer =
  | { readonly error: { readonly code: string; readonly message: string } }
  | { readonly exit: number }
  | { readonly signal: string };

/** A line before the answer, for the caller's user; at most MAX_NOTICE characters. */
export interface RunNotice {
  readonly notice: string;
}

export const MAX_NOTICE = 1000;

/** What the notice of a workload without an identity says (the agent sends it, `tidegate run` as root prints it). */
export function noIdentityNotice(workload: string, why: string): string {
  return `workload ${workload} has no identity (${why}): its connections are refused until the agent holds one`;
}

/**
 * Why root's run of `workload` has no user (neither --user nor the config's user:), given the
 * names of the config's workloads (null when unknown): a workload the config does not have is
 * said to be missing, with the ones it has and the nearest name, not to lack a user.
 */
export function noUserReason(workload: string, configured: readonly string[] | null): string {
  const name = JSON.stringify(workload.slice(0, 64));
  if (configured === null || configured.includes(workload)) return `workload ${name} names no user: in the config; give --user USER`;
  const near = nearest(workload, configured);
  const has = configured.length === 0 ? "it has none" : `it has: ${configured.slice(0, 20).join(", ")}${configured.length > 20 ? ", ..." : ""}`;
  return `workload ${name} is not in the agent's config (workloads: ${has})${didYouMean(near)}; give --user USER to run it anyway`;
}

const FIELDS = new Set(["workload", "user", "allow_root", "command", "env", "cwd", "mcp_stdio", "tty"]);

function bad(message: string): never {
  throw new RunProtocolError("run_bad_request", `run: bad request: ${message}`);
}

function text(v: unknown, what: string): string {
  if (typeof v !== "string") bad(`${what} is not a string`);
  if (v.includes("\0")) bad(`${what} contains a NUL`);
  return v;
}

function strings(v: unknown, what: string): string[] {
  if (!Array.isArray(v)) bad(`${what} is not a list of strings`);
  return v.map((x, i) => text(x, `${what}[${i}]`));
}

/** The request in one line of JSON (without its newline); throws RunProtocolError. */
export function parseRequest(line: string): RunRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    bad("not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad("not an object");
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.has(k)) bad(`unknown field ${JSON.stringify(k.slice(0, 64))}`);
  const workload = text(o.workload, "workload");
  if (workload === "" || workload.length > 255) bad("workload must be 1 to 255 characters");
  const user = o.user === undefined || o.user === null ? null : text(o.user, "user");
  if (user === "") bad("user is empty");
  if (o.allow_root !== undefined && typeof o.allow_root !== "boolean") bad("allow_root is not a boolean");
  const command = strings(o.command, "command");
  if (command.length === 0 || command[0] === "") bad("command is empty");
  const env = strings(o.env, "env");
  env.forEach((e, i) => {
    if (e.indexOf("=") < 1) bad(`env[${i}] is not NAME=VALUE`);
  });
  const cwd = text(o.cwd, "cwd");
  if (!cwd.startsWith("/")) bad("cwd is not an absolute path");
  if (o.mcp_stdio !== undefined && typeof o.mcp_stdio !== "boolean") bad("mcp_stdio is not a boolean");
  if (o.tty !== undefined && typeof o.tty !== "boolean") bad("tty is not a boolean");
  return { workload, user, allowRoot: o.allow_root === true, command, env, cwd, ...(o.mcp_stdio === true ? { mcpStdio: true } : {}), ...(o.tty === true ? { tty: true } : {}) };
}

/** The request as the line a client sends (newline included). */
export function encodeRequest(r: RunRequest): Uint8Array {
  const body = { workload: r.workload, user: r.user, ...(r.allowRoot ? { allow_root: true } : {}), command: r.command, env: r.env, cwd: r.cwd, ...(r.mcpStdio === true ? { mcp_stdio: true } : {}), ...(r.tty === true ? { tty: true } : {}) };
  return new TextEncoder().encode(`${JSON.stringify(body)}\n`);
}

export function encodeLine(v: unknown): Uint8Array {
  return new TextEncoder().encode(`${JSON.stringify(v)}\n`);
}

/** A signal line's signal; null for anything else (ignored by the agent). */
export function parseSignalLine(line: string): RunSignal | null {
  try {
    const v = JSON.parse(line) as { signal?: unknown };
    return RUN_SIGNALS.find((s) => s === v?.signal) ?? null;
  } catch {
    return null;
  }
}

/** The agent's answer line, or a notice line before it; throws `run_bad_answer` for anything else. */
export function parseAnswer(line: string): RunAnswer | RunNotice {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    v = null;
  }
  const o = v as Record<string, unknown> | null;
  if (o !== null && typeof o === "object") {
    const e = o.error as { code?: unknown; message?: unknown } | undefined;
    if (e && typeof e.code === "string" && typeof e.message === "string") return { error: { code: e.code, message: e.message } };
    if (Number.isInteger(o.exit) && (o.exit as number) >= 0 && (o.exit as number) <= 255) return { exit: o.exit as number };
    if (typeof o.signal === "string" && /^SIG[A-Z0-9]{1,12}$/.test(o.signal)) return { signal: o.signal };
    // printed on the caller's terminal: no control characters
    if (typeof o.notice === "string" && o.notice.length <= MAX_NOTICE && !/[\u0000-\u001f\u007f-\u009f]/.test(o.notice)) return { notice: o.notice };
  }
  throw new RunProtocolError("run_bad_answer", `run: the agent's answer is not understood: ${JSON.stringify(line.slice(0, 100))}`);
}

/**
 * Splits a byte stream into lines. `push` returns the complete lines so far. A first line (the
 * request) longer than `firstMax` bytes throws `run_request_too_large`; a later line longer than
 * `laterMax` is dropped whole (up to its newline), and the lines after it still come out.
 */
export class LineReader {
  private parts: Uint8Array[] = [];
  private size = 0;
  private lines = 0;
  private dropping = false;
  private seen = 0;

  constructor(private readonly firstMax = MAX_REQUEST, private readonly laterMax = MAX_LINE) {}

  /** Bytes pushed so far, in all. */
  get bytesSeen(): number {
    return this.seen;
  }

  /** Bytes held that are not yet a complete line. */
  get pending(): number {
    return this.size;
  }

  push(bytes: Uint8Array): string[] {
    this.seen += bytes.length;
    const out: string[] = [];
    let start = 0;
    for (let i = bytes.indexOf(10); i !== -1; i = bytes.indexOf(10, start)) {
      this.take(bytes.subarray(start, i));
      if (!this.dropping) out.push(new TextDecoder().decode(Buffer.concat(this.parts)));
      this.parts = [];
      this.size = 0;
      this.dropping = false;
      this.lines++;
      start = i + 1;
    }
    this.take(bytes.subarray(start));
    return out;
  }

  private take(b: Uint8Array): void {
    if (this.dropping) return;
    const max = this.lines === 0 ? this.firstMax : this.laterMax;
    if (this.size + b.length > max) {
      if (this.lines === 0) throw new RunProtocolError("run_request_too_large", `run: the request is larger than ${max} bytes`);
      this.parts = [];
      this.size = 0;
      this.dropping = true;
      return;
    }
    if (b.length > 0) this.parts.push(b.slice());
    this.size += b.length;
  }
}
