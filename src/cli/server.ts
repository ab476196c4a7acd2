/**
 * `tidegate server` (serve), `server init` and `server rotate-ca` (docs/server-api.md), and
 * `callServer`, how every operator verb (entry, token) talks to the running server's admin API on
 * server.sock.
 */
import type { Command, Context } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { TidegateError } from "../errors.ts";
import type { Places } from "../runtime/instance.ts";
import { callUnix, UnixHttpError } from "../runtime/unix-http.ts";
import { loadServerConfig } from "../server/config.ts";
import { initServer, serverPaths } from "../server/init.ts";
import { startServer } from "../server/server.ts";
import { dropStartupCode } from "../runtime/compiled-code.ts";
import { createLogger } from "../runtime/log.ts";
import { flagsFor, shellJoin } from "./global-options.ts";
import type { FederationStatus } from "../server/federation.ts";
import type { AuditStatus, ConnectionsStatus } from "../server/admin-app.ts";
import { encodePem, fromBase64 } from "../x509/index.ts";
import { trustDomainFlag } from "./flag-values.ts";
import { didYouMean, nearest } from "../policy/nearest.ts";

export class ServerCallError extends TidegateError {}

/**
 * One admin API call. A missing socket says the server is not running (server_not_running); an
 * error answer becomes an error with the server's own code and message.
 */
export async function callServer(places: Places, method: string, url: string, body?: unknown): Promise<any> {
  const socket = serverPaths(places).socket;
  let res;
  try {
    res = await callUnix(socket, "the server", method, url, body);
  } catch (e) {
    if (e instanceof UnixHttpError && e.code === "socket_unreachable") {
      throw new ServerCallError("server_not_running", `the server is not running: nothing answers on ${socket} (start it with 'tidegate server')`, { cause: e });
    }
    throw e;
  }
  if (res.status >= 200 && res.status < 300) return res.body;
  const err = (res.body as { error?: { code?: string; message?: string } } | null)?.error;
  throw new ServerCallError(err?.code ?? `http_${res.status}`, err?.message ?? `the server answered ${res.status}`);
}

function noPositionals(ctx: Context, verb: string): void {
  if (ctx.positionals.length === 0) return;
  const word = ctx.positionals[0]!;
  // `tidegate server` serves, so the router hands it what follows: a mistyped sub-command lands here.
  const near = verb === "tidegate server" ? nearest(word, [init, rotateCa, bundle, status].map((c) => c.name)) : [];
  throw new UsageError(`unknown command ${JSON.stringify(word.slice(0, 64))} for ${verb}${didYouMean(near)}`);
}

/** Resolves on SIGTERM or SIGINT. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: string) => {
      process.off("SIGTERM", term);
      process.off("SIGINT", int);
      resolve(sig);
    };
    const term = () => on("SIGTERM");
    const int = () => on("SIGINT");
    process.on("SIGTERM", term);
    process.on("SIGINT", int);
  });
}

const init: Command = {
  name: "init",
  summary: "create the server's CA and datastore for trust domain TD",
  usage: ["server init --trust-domain TD"],
  help: [
    "Creates <state-dir>/server/ (mode 0700) holding the CA (ca/: a root and a signing CA, keys",
    "0600) and the datastore (datastore.db), with the TTLs of the server settings file. Refuses",
    "when a CA or a datastore is already there: nothing is ever overwritten. Prints the SHA-256",
    "fingerprint of the root, which agents need to trust the server on first contact.",
  ].join("\n"),
  options: { "trust-domain": { type: "string", value: "TD", help: "the trust domain, e.g. example.org (required)" } },
  run: async (ctx) => {
    noPositionals(ctx, "tidegate server init");
    const text = ctx.values["trust-domain"];
    if (typeof text !== "string") throw new UsageError("server init needs --trust-domain TD");
    const td = trustDomainFlag(text).name; // "spiffe://example.org" is example.org: that is what is stored
    const settings = loadServerConfig(ctx.places);
    const { paths, fingerprint } = await initServer({ places: ctx.places, settings, trustDomain: td });
    ctx.io.out(`initialised trust domain ${td} in ${paths.dir}\nroot fingerprint (sha256): ${fingerprint}\nstart the server with: ${shellJoin(["tidegate", "server", ...flagsFor(ctx.places)])}\n`);
    return 0;
  },
};

const rotateCa: Command = {
  name: "rotate-ca",
  summary: "rotate the signing CA now, or publish a new root (--root)",
  usage: ["server rotate-ca [--root] [--json]"],
  help: [
    "Asks the running server (over server.sock) for a new signing CA under the active root, signed",
    "and self-checked before use; SVIDs already issued stay valid. With --root, publishes a new",
    "root in the bundle now; it signs nothing until one refresh hint later, so every agent has it",
    "before any chain depends on it. Prints the CA's roots and signing CA afterwards.",
  ].join("\n"),
  options: { root: { type: "boolean", help: "publish a new root instead" }, json: { type: "boolean", help: "print the CA status as JSON" } },
  run: async (ctx) => {
    noPositionals(ctx, "tidegate server rotate-ca");
    const ca = await callServer(ctx.places, "POST", "/v1/ca/rotate", { root: ctx.values.root === true });
    if (ctx.values.json) {
      ctx.io.out(JSON.stringify(ca, null, 2) + "\n");
      return 0;
    }
    const lines = (ca.roots as { serial: string; sha256: string; state: string; not_after: string; activate_at?: string }[]).map(
      (r) => `root     ${r.serial}  ${r.state.padEnd(8)}  until ${r.not_after}${r.activate_at ? `  activates ${r.activate_at}` : ""}\n         sha256 ${r.sha256}`,
    );
    lines.push(`signing  ${ca.signing.serial}  under ${ca.signing.root}  until ${ca.signing.not_after}`);
    ctx.io.out(lines.join("\n") + "\n");
    return 0;
  },
};

const bundle: Command = {
  name: "bundle",
  summary: "print this trust domain's bundle, for a federating server",
  usage: ["server bundle [--pem]"],
  help: [
    "Prints the bundle the running server's bundle endpoint serves (SPIFFE JWKS), or with --pem its",
    "X.509 roots. Another trust domain's server that federates with this one over https_spiffe",
    "needs it once, out of band, as the `bundle:` file of its federation: item (docs/federation.md);",
    "after that it fetches the bundle from the endpoint on its own.",
  ].join("\n"),
  options: { pem: { type: "boolean", help: "print the X.509 roots as PEM instead of JWKS" } },
  run: async (ctx) => {
    noPositionals(ctx, "tidegate server bundle");
    const jwks = (await callServer(ctx.places, "GET", "/v1/bundle")) as { keys?: { use?: string; x5c?: string[] }[] };
    if (ctx.values.pem !== true) {
      ctx.io.out(JSON.stringify(jwks, null, 2) + "\n");
      return 0;
    }
    const roots = (jwks.keys ?? []).filter((k) => k.use === "x509-svid" && typeof k.x5c?.[0] === "string").map((k) => fromBase64(k.x5c![0]!))
      .filter((der) => der !== null)
      .map((der) => encodePem("CERTIFICATE", der));
    ctx.io.out(roots.join(""));
    return 0;
  },
};

const status: Command = {
  name: "status",
  summary: "show the running server: addresses, CA, federated trust domains",
  usage: ["server status [--json]"],
  help: [
    "Asks the running server (over server.sock) for its addresses, its bundle's roots (SHA-256 of",
    "each, to compare with what a federating partner holds), counts of entries and nodes, and each",
    "federated trust domain: its endpoint, whether its bundle is current, never fetched or dropped",
    "(older than max_age), when it was fetched and expires, and the last fetch error.",
    "Also the per-source connection cap with the connections refused over it, and the server's",
    "audit log: whether it can be written and what audit.on_failure does meanwhile.",
    "Exit 0 when every federated bundle is current and the audit log can be written, 1 otherwise.",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print the status as JSON" } },
  run: async (ctx) => {
    noPositionals(ctx, "tidegate server status");
    const s = (await callServer(ctx.places, "GET", "/v1/status")) as {
      trust_domain: string;
      public: string;
      api: string;
      bundle_sequence: number;
      entries: number;
      nodes: number;
      ca: { roots: { serial: string; sha256: string; state: string }[] };
      federation: FederationStatus[];
      connections?: ConnectionsStatus;
      audit?: AuditStatus;
    };
    const healthy = s.federation.every((f) => f.state === "current") && s.audit?.healthy !== false;
    if (ctx.values.json) {
      ctx.io.out(JSON.stringify(s, null, 2) + "\n");
      return healthy ? 0 : 1;
    }
    const lines = [`trust domain  ${s.trust_domain}`, `public        ${s.public}`, `api           ${s.api}`, `bundle        sequence ${s.bundle_sequence}`];
    for (const r of s.ca.roots) lines.push(`  root        ${r.state.padEnd(8)} sha256 ${r.sha256}`);
    lines.push(`entries       ${s.entries}`, `nodes         ${s.nodes}`);
    const a = s.audit;
    if (a !== undefined) {
      lines.push(
        a.healthy
          ? `audit log     ${a.dir}  seq ${a.seq}`
          : `audit log     CANNOT BE WRITTEN (${a.error ?? "unknown error"}): ${a.dir}; ${a.on_failure === "refuse" ? "attestation, SVID issuance and admin changes are refused (audit.on_failure: refuse)" : "served unrecorded for now (audit.on_failure: serve)"}`,
      );
    }
    const c = s.connections;
    if (c !== undefined) lines.push(`connections   at most ${c.max_per_source} open per source address; refused over it: public ${c.public.refused}, api ${c.api.refused}`);
    for (const f of s.federation) {
      lines.push(`federation    ${f.trust_domain}  ${f.state}  ${f.profile} ${f.bundle_endpoint}`);
      if (f.refreshed_at !== null) lines.push(`              fetched ${f.refreshed_at}, expires ${f.expires_at}`);
      if (f.last_error !== null) lines.push(`              last error (${f.failures} in a row): ${f.last_error}`);
    }
    if (s.federation.length === 0) lines.push("federation    none");
    ctx.io.out(lines.join("\n") + "\n");
    return healthy ? 0 : 1;
  },
};

export const serverCommand: Command = {
  name: "server",
  summary: "run the identity server: CA, entries, join tokens, SVID signing, bundle endpoint",
  usage: ["server", "server init --trust-domain TD", "server rotate-ca [--root] [--json]", "server bundle [--pem]", "server status [--json]"],
  help: [
    "Without a sub-command, serves until SIGTERM or SIGINT (SIGHUP is logged and ignored: settings",
    "are read at start only): the public listener (TLS; join-token",
    "attestation and the SPIFFE bundle endpoint), the API listener (mutual TLS with node SVIDs:",
    "renewal, sync, workload SVIDs) and the admin API on <run-dir>/server.sock (root only; used by",
    "'tidegate entry', 'tidegate token' and 'server rotate-ca'). Settings come from",
    "--server-config (default /etc/tidegate/server.yaml; absent means defaults). Writes",
    "<run-dir>/server.json with the bound addresses. Logs JSON lines on stderr.",
    "Exit 1 when the state was never initialised, the datastore is locked by another server or",
    "corrupt, the CA does not load, or a listener cannot bind.",
  ].join("\n"),
  subcommands: [init, rotateCa, bundle, status],
  run: async (ctx) => {
    noPositionals(ctx, "tidegate server");
    const settings = loadServerConfig(ctx.places);
    const logger = createLogger();
    // Signals are ours from before the start: SIGHUP's default action ends the process, so a
    // reload sent to the server (`systemctl reload`, a script that HUPs every tidegate) killed it.
    // The server reads server.yaml only at start: a SIGHUP is logged and ignored.
    const stopped = untilSignal();
    const hup = () => logger.warn("server_sighup_ignored", { effect: "the server reads its settings only at start: restart it to apply a change to server.yaml" });
    process.on("SIGHUP", hup);
    try {
      const server = await startServer({ places: ctx.places, settings, logger });
      void dropStartupCode(logger, "server");
      const sig = await stopped;
      ctx.io.err(`tidegate server: ${sig}, stopping\n`);
      await server.stop();
    } finally {
      process.off("SIGHUP", hup);
    }
    return 0;
  },
};
