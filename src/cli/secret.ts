/**
 * `tidegate secret set|list|rm` (docs/secrets.md): the store the proxy's header injection reads,
 * `<state-dir>/secrets/`. Root only. A value comes from stdin (a hidden prompt on a terminal) or
 * `--from-file`, never from argv, and is never printed: not by these verbs, not in an error.
 * Arguments that are refused are not echoed either (one may be a value typed in the wrong place).
 */
import type { Command, Context } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { str } from "./global-options.ts";
import { readInputFile } from "./files.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SecretStore, secretsDir, checkSecretName, readSecretInput, secretValueFromBytes, SecretError, MAX_SECRET_BYTES, AGENT_RECHECK_MS } from "../secrets/index.ts";
import { callUnix, nobodyListens } from "../runtime/unix-http.ts";

/** How long `set` and `rm` wait for the running agent to hear of the change. */
const TELL_AGENT_MS = 2000;

/**
 * Tells this instance's running agent that the store changed (agent.sock `POST
 * /v1/secrets/changed`), so its next request reads it. No agent: nothing to tell (one that starts
 * reads the store). An agent that cannot be told uses the change within AGENT_RECHECK_MS anyway:
 * a note says so, and the command still succeeds (the store was written).
 */
async function tellAgent(ctx: Context): Promise<void> {
  const socket = join(ctx.places.runDir, "agent.sock");
  if (!existsSync(socket)) return;
  const later = `the running agent uses the change within ${AGENT_RECHECK_MS / 1000} s`;
  const signal = AbortSignal.timeout(TELL_AGENT_MS);
  try {
    const r = await callUnix(socket, "the agent", "POST", "/v1/secrets/changed", undefined, signal);
    if (r.status !== 200) ctx.io.err(`secret: the agent at ${socket} answered ${r.status}; ${later}\n`);
  } catch (e) {
    if (signal.aborted) return void ctx.io.err(`secret: the agent at ${socket} did not answer within ${TELL_AGENT_MS / 1000} s; ${later}\n`);
    if (nobodyListens(e)) return; // a socket file left by an agent that is gone: nobody to tell
    ctx.io.err(`secret: could not tell the agent at ${socket} (${e instanceof Error ? e.message : String(e)}); ${later}\n`);
  }
}

function requireRoot(dir: string): void {
  const uid = process.getuid?.();
  if (uid !== 0) throw new SecretError("secret_not_root", `secrets: only root manages secrets (the store ${dir} is root's; this is uid ${uid ?? "unknown"})`);
}

/** The one NAME argument; a bad one is a usage error that does not repeat it. */
function nameArgument(verb: string, positionals: readonly string[], extra: string): string {
  if (positionals.length === 0) throw new UsageError(`secret ${verb} needs a NAME`);
  if (positionals.length > 1) throw new UsageError(`secret ${verb} takes one NAME${extra}`);
  try {
    return checkSecretName(positionals[0]!);
  } catch (e) {
    if (e instanceof SecretError) throw new UsageError(e.message);
    throw e;
  }
}

function openStore(ctx: Context): SecretStore {
  const dir = secretsDir(ctx.places.stateDir);
  requireRoot(dir);
  return SecretStore.open(dir);
}

const set: Command = {
  name: "set",
  summary: "store a secret's value, read from stdin or a file",
  usage: ["secret set NAME [--from-file FILE]"],
  help: [
    "Reads the value of NAME from stdin (to its end; on a terminal, a prompt that does not echo,",
    "ended by Enter) or from FILE, removes one trailing newline, and stores it encrypted",
    "(AES-256-GCM) in <state-dir>/secrets/, replacing any value NAME had. Never from the command",
    "line: other users can read argv. NAME is 1-64 of letters, digits, '_', '.', '-' (what",
    "${secret:NAME} in the policy names). A value is 1 to " + MAX_SECRET_BYTES + " bytes of printable ASCII, space",
    "and tab: it goes into HTTP headers. A running agent of the same instance is told over",
    "agent.sock and uses the new value from its next request (one it cannot tell: within " + AGENT_RECHECK_MS / 1000 + " s).",
    "Root only. Exit 0 stored, 1 refused or failed.",
    "",
    'Example: printf %s "$GITHUB_TOKEN" | tidegate secret set github_token',
  ].join("\n"),
  options: { "from-file": { type: "string", value: "FILE", help: "read the value from FILE instead of stdin" } },
  run: async (ctx) => {
    const name = nameArgument("set", ctx.positionals, ": the value comes from stdin or --from-file, never the command line (other users can read argv)");
    const store = openStore(ctx);
    const file = str(ctx.values["from-file"]);
    const value = file !== undefined ? secretValueFromBytes(name, readInputFile(file, "--from-file")) : await readSecretInput(name, ctx.io.err);
    const done = await store.set(name, value);
    ctx.io.out(`secret ${name} ${done === "created" ? "stored" : "replaced"} in ${store.dir}\n`);
    await tellAgent(ctx);
    return 0;
  },
};

const list: Command = {
  name: "list",
  summary: "list the stored secrets' names and when each was set",
  usage: ["secret list [--json]"],
  help: [
    "Prints each secret's name and when its value was last set (UTC), sorted by name. Values are",
    "never shown. Root only. Exit 0, also when the store is empty.",
  ].join("\n"),
  options: { json: { type: "boolean", help: 'print {"secrets": [{"name", "changed_at"}]}' } },
  run: async (ctx) => {
    if (ctx.positionals.length > 0) throw new UsageError("secret list takes no arguments");
    const store = openStore(ctx);
    const items = store.list();
    if (ctx.values.json) {
      ctx.io.out(JSON.stringify({ secrets: items.map((i) => ({ name: i.name, changed_at: i.changedAt })) }, null, 2) + "\n");
      return 0;
    }
    if (items.length === 0) {
      ctx.io.out(`no secrets in ${store.dir}\n`);
      return 0;
    }
    const width = Math.max(4, ...items.map((i) => i.name.length));
    ctx.io.out([`${"NAME".padEnd(width)}  CHANGED`, ...items.map((i) => `${i.name.padEnd(width)}  ${i.changedAt}`)].join("\n") + "\n");
    return 0;
  },
};

const rm: Command = {
  name: "rm",
  summary: "remove a secret",
  usage: ["secret rm NAME"],
  help: [
    "Removes NAME from the store. Requests whose rule injects it are refused from the agent's next",
    "request on (a running agent of the same instance is told over agent.sock; one it cannot tell",
    "notices within " + AGENT_RECHECK_MS / 1000 + " s). Root only. Exit 0 removed, 1 when the store holds no NAME",
    "(secret_not_found).",
  ].join("\n"),
  run: async (ctx) => {
    const name = nameArgument("rm", ctx.positionals, "");
    const store = openStore(ctx);
    if (!(await store.remove(name))) throw new SecretError("secret_not_found", `secrets: ${store.dir} holds no secret ${name}`);
    ctx.io.out(`secret ${name} removed from ${store.dir}\n`);
    await tellAgent(ctx);
    return 0;
  },
};

export const secretCommand: Command = {
  name: "secret",
  summary: "store the secrets the proxy injects into requests (root only)",
  usage: ["secret set NAME [--from-file FILE]", "secret list [--json]", "secret rm NAME"],
  help: "Values are encrypted at rest under <state-dir>/secrets/ and never printed. docs/secrets.md.",
  subcommands: [set, list, rm],
};
