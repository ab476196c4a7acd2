/**
 * `tidegate audit export --otlp URL` (docs/audit.md, "Commands" and "Export"): sends the events
 * of audit files to an OTLP/HTTP logs collector with the exporter of src/audit/export/, once and
 * in seq order, then exits.
 *
 * Where it starts: after the seq in `--cursor FILE` when that file exists (a rerun resumes; the
 * file is updated after each acknowledged batch), but not before `--from-seq N`; with neither, at
 * the first event of the files. A source that does not continue from there (events deleted
 * before they were exported) stops with `export_source_gap`: nothing is skipped in silence.
 * A cursor whose file could not be saved is refused before the first batch (a usage error);
 * one that fails later says which seq the collector acknowledged and which the file still holds.
 * The URL is never printed whole: messages show scheme, host, port and path only, and a URL with
 * a user name or password is refused without repeating it (a usage error).
 */
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { CursorFile, ExportError, FileSource, OtlpExporter, type EventSource, type ExportCursor, type ExportStatus } from "../audit/export/index.ts";
import { parseEndpoint } from "../audit/export/endpoint.ts";
import type { Command, Context } from "./command.ts";
import { EXIT_FAILURE, EXIT_OK } from "./command.ts";
import { str } from "./global-options.ts";
import { UsageError } from "./usage-error.ts";
import { dirSources, explicitSources, requireDir } from "./audit-files.ts";
import { FilesSource } from "./audit-export-source.ts";
import { logPlace } from "./audit-trust.ts";

/** Progress goes to stderr every PROGRESS_EVERY events delivered. */
export const PROGRESS_EVERY = 5000;

function fromSeq(v: unknown): number | null {
  if (v === undefined) return null;
  const text = String(v);
  if (!/^[1-9]\d{0,14}$/.test(text)) throw new UsageError(`--from-seq ${JSON.stringify(text.slice(0, 40))} is not a seq (1 or more)`);
  return Number(text);
}

function endpoint(v: unknown): { url: string; shown: string } {
  if (typeof v !== "string") throw new UsageError("audit export needs --otlp URL (the collector's logs endpoint, e.g. http://127.0.0.1:4318/v1/logs)");
  try {
    return parseEndpoint(v);
  } catch (e) {
    if (e instanceof ExportError) throw new UsageError(`--otlp: ${e.message.replace(/^audit: export: /, "")}`);
    throw e;
  }
}

/**
 * The cursor: the file's when it exists, else in memory, starting at `start`, never below `floor`.
 * `seq` is what the cursor holds (a rerun resumes after it), `acked` the last seq the collector
 * acknowledged: they differ only when the file could not be saved, and the error says both.
 */
function cursorFor(path: string | undefined, start: number, floor: number): ExportCursor & { readonly seq: number; readonly acked: number; check(): Promise<void> } {
  const file = path === undefined ? null : new CursorFile(path);
  let seq = start;
  let acked = start;
  return {
    get seq() {
      return seq;
    },
    get acked() {
      return acked;
    },
    /** A usage error, before anything is sent, when the file could not be saved. */
    async check() {
      try {
        await file?.checkWritable();
      } catch (e) {
        if (e instanceof ExportError) throw new UsageError(`--cursor: ${e.message.replace(/^audit: export: /, "")}`);
        throw e;
      }
    },
    async load() {
      const saved = file !== null && existsSync(file.path) ? await file.load() : start;
      seq = acked = Math.max(saved, floor);
      return seq;
    },
    async save(s: number) {
      acked = s;
      try {
        await file?.save(s);
      } catch (e) {
        if (!(e instanceof ExportError && e.code === "export_cursor_unwritable")) throw e;
        const why = e.message.replace(/^audit: export: /, "");
        throw new ExportError("export_cursor_unwritable", `audit: export: the collector acknowledged the events up to seq ${s}, but ${why}; it still holds seq ${seq}, so a rerun with it sends seq ${seq + 1} to ${s} again`, { cause: e });
      }
      seq = s;
    },
  };
}

async function run(ctx: Context): Promise<number> {
  const target = endpoint(ctx.values.otlp);
  const from = fromSeq(ctx.values["from-seq"]);
  const paths = ctx.positionals;
  let source: EventSource;
  let first: number | null;
  let where: string;
  // The resource names this host only for this host's own log: FILES may come from anywhere.
  let host: string | undefined;
  if (paths.length > 0) {
    const files = explicitSources(paths);
    source = new FilesSource(files);
    first = files[0]?.firstSeq ?? null;
    where = `${files.length} ${files.length === 1 ? "file" : "files"}`;
  } else {
    const dir = logPlace(ctx.places, ctx.values.server === true ? "server" : "agent").dir;
    requireDir(dir, "export");
    source = new FileSource(dir);
    first = dirSources(dir)[0]?.firstSeq ?? null;
    where = dir;
    host = hostname();
  }
  const floor = from === null ? 0 : from - 1;
  const cursor = cursorFor(str(ctx.values.cursor), from === null ? Math.max(0, (first ?? 1) - 1) : floor, floor);
  await cursor.check();
  const io = ctx.io;
  let startSeq = -1;
  let shown = 0;
  const onStatus = (s: ExportStatus) => {
    if (startSeq < 0) startSeq = s.seq;
    const sent = s.seq - startSeq;
    if (s.state === "retrying") io.err(`audit export: ${s.status !== undefined ? `status ${s.status}` : (s.error ?? "no answer")} from ${target.shown}; trying again in ${((s.waitMs ?? 0) / 1000).toFixed(1)} s\n`);
    else if (sent - shown >= PROGRESS_EVERY) {
      shown = sent - (sent % PROGRESS_EVERY);
      io.err(`audit export: ${sent} events sent (up to seq ${s.seq})\n`);
    }
  };
  const exporter = new OtlpExporter({ url: target.url, instance: ctx.places.instance ?? "default", ...(host !== undefined ? { hostName: host } : {}), source, cursor, onStatus });
  const ac = new AbortController();
  const stop = () => {
    ac.abort();
    void exporter.stop();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    const { delivered } = await exporter.runOnce();
    const last = cursor.seq;
    if (ac.signal.aborted) {
      io.err(`audit export: interrupted after ${delivered} events; resume after seq ${last}${str(ctx.values.cursor) === undefined ? " with --from-seq " + (last + 1) : " with the same --cursor"}\n`);
      return EXIT_FAILURE;
    }
    io.out(delivered === 0 ? `nothing to export from ${where} after seq ${last}\n` : `exported ${delivered} events (seq ${last - delivered + 1} to ${last}) from ${where} to ${target.shown}\n`);
    return EXIT_OK;
  } catch (e) {
    const sent = startSeq < 0 ? 0 : cursor.acked - startSeq;
    io.err(`audit export: ${sent} events were delivered before the failure (up to seq ${cursor.acked})\n`);
    throw e;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

export const exportCommand: Command = {
  name: "export",
  summary: "send audit events to an OTLP/HTTP logs collector, once and in order",
  usage: ["audit export --otlp URL [FILES...] [--from-seq N] [--cursor FILE]"],
  help: [
    "Sends the events of FILES (default: the agent's log in the instance's audit directory,",
    "--audit-dir, default /var/log/tidegate[-INSTANCE]; --server: the identity server's log) to",
    "URL, an OTLP/HTTP logs endpoint (JSON encoding), in seq order, each once: a batch goes only",
    "after the one before it was acknowledged. 408, 429, 502, 503, 504 and an unreachable collector",
    "are retried with backoff (Retry-After honoured) until it answers or Ctrl-C; any other status",
    "stops the export. Each record's body is the raw line, its attributes the event's fields,",
    "tidegate.seq among them (docs/audit.md, \"Export\").",
    "",
    "--cursor FILE keeps the last seq delivered, updated after each batch: a rerun with the same",
    "FILE sends only what came since. Without a cursor the export starts at the first event of",
    "the files, or at --from-seq N. A cursor whose folder cannot be written is refused before",
    "anything is sent. Events missing at the start (deleted before they were exported) stop the",
    "export (export_source_gap) rather than being skipped in silence.",
    "The URL is not printed (only scheme, host, port and path); one with a user name or password",
    "is refused. Progress every " + PROGRESS_EVERY + " events on stderr; the count on stdout.",
    "",
    "  tidegate audit export --otlp http://127.0.0.1:4318/v1/logs --cursor /var/lib/tidegate/export.cursor",
    "",
    "Exit 0 all sent; 1 refused by the collector, interrupted, a file that is not an audit log, or",
    "a cursor that could not be saved after a batch (export_cursor_unwritable);",
    "2 usage error.",
  ].join("\n"),
  options: {
    otlp: { type: "string", value: "URL", help: "the collector's OTLP/HTTP logs endpoint (required), e.g. http://host:4318/v1/logs" },
    "from-seq": { type: "string", value: "N", help: "send events from seq N on" },
    cursor: { type: "string", value: "FILE", help: "remember the last seq delivered in FILE; a rerun resumes after it" },
    server: { type: "boolean", help: "the identity server's log (<audit-dir>/server) instead of the agent's" },
  },
  run,
};
