/**
 * `tidegate audit tail|verify|export` (docs/audit.md, "Commands"): reading the audit log an agent
 * (or server) writes in its audit directory. None of them writes to the log or needs the agent.
 */
import type { Command, Context } from "./command.ts";
import { EXIT_FAILURE, EXIT_OK } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { str } from "./global-options.ts";
import { allInDir, explicitSources, requireDir } from "./audit-files.ts";
import { parseFilters } from "./audit-view.ts";
import { tailAudit } from "./audit-tail.ts";
import { loadState, loadTrust, logPlace, type LogOwner } from "./audit-trust.ts";
import { jsonRun, pinSigner, printRun, verifyFiles } from "./audit-verify.ts";
import { StateFiles } from "../agent/state-files.ts";
import { spiffeIdFlag } from "./flag-values.ts";
import { exportCommand } from "./audit-export-command.ts";
import { serverId } from "../server/ids.ts";

/** The node's SPIFFE ID from the agent's state; null when the agent never joined. A damaged agent.json is a usage error: the pin is never dropped in silence. */
function nodeIdOf(stateDir: string): string | null {
  try {
    return new StateFiles(stateDir).readAgentJson()?.spiffe_id ?? null;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
}

function list(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : typeof v === "string" ? [v] : [];
}

function count(v: unknown): number {
  if (v === undefined) return 20;
  const text = String(v);
  if (!/^\d{1,9}$/.test(text)) throw new UsageError(`-n ${JSON.stringify(text.slice(0, 40))} is not a count of events (0 or more)`);
  return Number(text);
}

const SERVER_OPTION = { type: "boolean", help: "the identity server's log (<audit-dir>/server, state <state-dir>/server/) instead of the agent's" } as const;

const ownerOf = (ctx: Context): LogOwner => (ctx.values.server === true ? "server" : "agent");

/** Ends `f`'s signal on SIGINT or SIGTERM, for as long as `f` runs. */
async function untilSignal(f: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  try {
    await f(ac.signal);
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
  }
}

const tail: Command = {
  name: "tail",
  summary: "print the last events of the audit log, and with -f the new ones as they come",
  usage: ["audit tail [-f|--follow] [--json] [-n N] [--where FIELD=VALUE ...] [--dir DIR]"],
  help: [
    "Prints the last N events (default 20) of the agent's log in the instance's audit directory",
    "(--audit-dir, default /var/log/tidegate[-INSTANCE]; --server: its server/ folder, the identity",
    "server's log; --dir DIR: any other), oldest first. Each is one line: time, type, #seq,",
    "then its fields as key=value, nested ones with dots (src.spiffe_id=...); null fields, prev and",
    "a checkpoint's certificates and signature are left out. --json prints the raw lines instead (with",
    "C1 controls, bidi and other format characters, U+2028 and U+2029 written as \\uXXXX).",
    "",
    "--where FIELD=VALUE keeps the events whose FIELD (a dotted path) is exactly VALUE: strings as",
    "they are, numbers and booleans as written, null as null. Several are ANDed:",
    "  tidegate audit tail --where type=deny --where src.workload=claude -n 50",
    "type= must name an event type; when nothing matches and no event read has a filter's field,",
    "a note on stderr says so.",
    "",
    "-f keeps printing new events as the agent writes them, following rotation, until Ctrl-C or",
    "SIGTERM. A line still being written is printed once it is complete. Lines that are not audit",
    "events are skipped with a warning (audit verify tells what is wrong with them).",
    "Does not verify the chain: use audit verify.",
    "",
    "Exit 0 printed (with -f: stopped by a signal); 1 the directory does not exist (audit_no_log;",
    "with -f it is waited for); 2 on a usage error.",
  ].join("\n"),
  options: {
    follow: { type: "boolean", short: "f", help: "keep printing new events, across rotations, until interrupted" },
    json: { type: "boolean", help: "print the raw JSON lines" },
    lines: { type: "string", short: "n", value: "N", help: "how many of the last events to print first (default 20; 0 with -f: only new ones)" },
    where: { type: "string", multiple: true, value: "FIELD=VALUE", help: "only events whose FIELD (dotted path) is exactly VALUE" },
    dir: { type: "string", value: "DIR", help: "read the log in DIR instead of the instance's audit directory" },
    server: SERVER_OPTION,
  },
  run: async (ctx: Context) => {
    if (ctx.positionals.length > 0) throw new UsageError(`audit tail takes no arguments (got ${JSON.stringify(ctx.positionals[0]!.slice(0, 80))}): give --dir DIR for another log`);
    const opts = {
      dir: str(ctx.values.dir) ?? logPlace(ctx.places, ownerOf(ctx)).dir,
      count: count(ctx.values.lines),
      json: ctx.values.json === true,
      filters: parseFilters(list(ctx.values.where)),
      follow: ctx.values.follow === true,
    };
    if (!opts.follow) await tailAudit(opts, ctx.io);
    else await untilSignal((signal) => tailAudit({ ...opts, signal }, ctx.io));
    return EXIT_OK;
  },
};

const verify: Command = {
  name: "verify",
  summary: "check that the audit log is intact: chain, checkpoints, signatures, cut tail",
  usage: ["audit verify [FILES...] [--bundle FILE [--trust-domain TD]] [--state DIR | --no-state] [--json]"],
  help: [
    "Checks every line against the one before it (seq + 1, prev = SHA-256 of that line), every",
    "signed checkpoint (its count, its ES256 signature, its certificate chain against the trust",
    "bundle at the checkpoint's time), and that the log still holds the agent's latest checkpoint.",
    "Reports the first broken link: an edited, deleted, inserted or reordered line, a torn line, a",
    "bad checkpoint, a tail cut off; as FILE line N (seq S): CODE: what is wrong.",
    "",
    "FILES default to the files of the instance's audit directory (--audit-dir, default",
    "/var/log/tidegate[-INSTANCE]) in chain order; FILES given are sorted by their first seq.",
    "The trust bundle: --bundle FILE (PEM roots or SPIFFE JWKS of the trust domain), else the",
    "agent's own (<state-dir>/agent/bundle.json), else none (certificates are then checked",
    "against their own keys only, with a warning).",
    "The state: where the agent records its latest checkpoint,",
    "<state-dir>/agent/audit-checkpoint.json, used when it exists and the files are the audit",
    "directory's; --state DIR reads DIR/audit-checkpoint.json (or DIR/agent/..., or DIR as the",
    "file) instead; --no-state skips it.",
    "Without state, a tail cut exactly at a checkpoint cannot be told from a log that ends there.",
    "--server verifies the identity server's log (<audit-dir>/server, <state-dir>/server/).",
    "",
    "  tidegate audit verify --bundle /etc/tidegate/roots.pem",
    "  tidegate audit verify --state /backup/state /backup/log/audit-*.jsonl /backup/log/audit.jsonl",
    "",
    "Exit 0 intact (warnings on stderr); 1 a break was found, or there is no log (audit_no_log);",
    "2 usage error, or an input named (FILES, bundle, state) that cannot be read or parsed.",
  ].join("\n"),
  options: {
    bundle: { type: "string", value: "FILE", help: "trust bundle the checkpoint certificates must chain to (PEM roots or JWKS)" },
    "trust-domain": { type: "string", value: "TD", help: "the trust domain of --bundle (default: the one its roots name)" },
    state: { type: "string", value: "DIR", help: "a state dir holding audit-checkpoint.json (or agent/audit-checkpoint.json), or that file" },
    "no-state": { type: "boolean", help: "do not check against the agent's latest checkpoint" },
    json: { type: "boolean", help: "print the report as JSON" },
    signer: { type: "string", value: "SPIFFE-ID", help: "every checkpoint must be signed by this ID (default for the agent's own log: its node ID, from <state-dir>/agent/agent.json)" },
    server: SERVER_OPTION,
  },
  run: async (ctx: Context) => {
    const { dir, statePath } = logPlace(ctx.places, ownerOf(ctx));
    const paths = ctx.positionals;
    // a bad --signer is a usage error, never a false break
    const signerText = str(ctx.values.signer);
    const pinned = signerText === undefined ? undefined : spiffeIdFlag(signerText, "--signer").toString();
    if (str(ctx.values["trust-domain"]) !== undefined && str(ctx.values.bundle) === undefined) throw new UsageError("--trust-domain goes with --bundle FILE");
    // The audit directory's own files, named or not, are this node's log: its state and its signer apply.
    const own = paths.length === 0 || allInDir(paths, dir);
    const state = loadState({ state: str(ctx.values.state), noState: ctx.values["no-state"] === true, statePath, useDefault: own });
    const trust = await loadTrust({ bundle: str(ctx.values.bundle), trustDomain: str(ctx.values["trust-domain"]), stateDir: ctx.places.stateDir });
    const explicit = paths.length > 0 ? explicitSources(paths) : null;
    if (explicit === null) requireDir(dir, "verify");
    // The identity server signs its log with its own SVID, spiffe://TD/tidegate/server: pinned when the bundle names one trust domain.
    const serverPin = trust.trustDomains.length === 1 ? serverId(trust.trustDomains[0]!).toString() : null;
    const signer = pinned ?? (!own ? null : ownerOf(ctx) === "agent" ? nodeIdOf(ctx.places.stateDir) : serverPin);
    const run = pinSigner(await verifyFiles({ dir, explicit, trust, state, now: () => new Date() }), signer);
    if (ctx.values.json) ctx.io.out(jsonRun(run, { trust, state }));
    else printRun(run, { trust, state, where: explicit === null ? `in ${dir}` : "given" }, ctx.io);
    return run.report.ok ? EXIT_OK : EXIT_FAILURE;
  },
};

export const auditCommand: Command = {
  name: "audit",
  summary: "read, verify and export the tamper-evident audit log",
  usage: ["audit tail [-f] [--json] [-n N] [--where FIELD=VALUE ...]", "audit verify [FILES...] [--bundle FILE] [--state DIR | --no-state] [--json]", "audit export --otlp URL [FILES...] [--from-seq N] [--cursor FILE]"],
  help: "The log is JSON lines, hash-chained, with signed checkpoints, in the instance's audit directory. docs/audit.md.",
  subcommands: [tail, verify, exportCommand],
};
