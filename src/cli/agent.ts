/**
 * `tidegate agent`: the node agent (its identity part: join, node SVID, sync, workload SVIDs, the
 * admin API on agent.sock). Runs until SIGTERM or SIGINT, then stops cleanly and removes the
 * socket. Logs JSON lines on stderr; the join token never appears in them, nor a --server URL's
 * user name or password (a bad --server is a usage error found before the agent starts).
 */
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { str } from "./global-options.ts";
import { readInputFile } from "./files.ts";
import { parseDuration } from "../runtime/duration.ts";
import { createLogger } from "../runtime/log.ts";
import { dropStartupCode } from "../runtime/compiled-code.ts";
import { heapGovernor } from "../runtime/heap-governor.ts";
import { connectionsClosed } from "../proxy/in-flight.ts";
import { DEFAULT_RETRY_MAX_MS, DEFAULT_SYNC_INTERVAL_MS, parseFingerprint, startAgent } from "../agent/index.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Output } from "./command.ts";
import type { Places } from "../runtime/instance.ts";
import { answersOn } from "../runtime/unix-http.ts";
import { probeHost } from "../runtime/host.ts";
import { Capture } from "../bpf/capture.ts";
import { loadPolicy, PolicyError, type AgentSettings, type AuditSettings } from "../policy/index.ts";
import { untrustedFileReason } from "../runtime/trusted-file.ts";
import { httpsOriginFlag } from "./flag-values.ts";
import { AgentError } from "../agent/errors.ts";
import { runningUp } from "./up.ts";
import { hurryOnSecondSignal } from "./stop-signals.ts";

/**
 * The `agent:` settings of the config file (docs/policy.md), when the file exists. An invalid file
 * stops the agent: it never starts on a policy it could not read.
 */
export function configuredAgent(configPath: string): AgentSettings | null {
  return configured(configPath)?.agent ?? null;
}

function configured(configPath: string): { agent: AgentSettings; audit: AuditSettings } | null {
  if (!existsSync(configPath)) return null;
  const untrusted = untrustedFileReason(configPath, process.geteuid?.() ?? 0);
  if (untrusted !== null) throw new PolicyError("config_untrusted", `policy: ${configPath} is not trusted: ${untrusted}; only root may be able to change the agent's config`);
  return loadPolicy(new TextDecoder().decode(readInputFile(configPath, "agent --config")), configPath);
}

/**
 * Flags win over the config file's `agent:` settings, field by field; `--server-fingerprint` and
 * `--trust-bundle` replace each other whichever side gives them.
 */
export function mergeAgentSettings(values: Readonly<Record<string, unknown>>, file: AgentSettings | null): Record<string, string | undefined> {
  const flagTrust = str(values["server-fingerprint"]) !== undefined || str(values["trust-bundle"]) !== undefined;
  const flagToken = str(values["join-token"]) !== undefined || str(values["join-token-file"]) !== undefined;
  const ms = (n: number | null | undefined) => (n === null || n === undefined ? undefined : `${n}ms`);
  return {
    server: str(values.server) ?? file?.server ?? undefined,
    "server-fingerprint": flagTrust ? str(values["server-fingerprint"]) : (file?.serverFingerprint ?? undefined),
    "trust-bundle": flagTrust ? str(values["trust-bundle"]) : (file?.trustBundle ?? undefined),
    "join-token": str(values["join-token"]),
    "join-token-file": flagToken ? str(values["join-token-file"]) : (file?.joinTokenFile ?? undefined),
    "sync-interval": str(values["sync-interval"]) ?? ms(file?.syncIntervalMs),
    "retry-max": str(values["retry-max"]) ?? ms(file?.retryMaxMs),
  };
}

/** `tidegate agent --uninstall`: refused while this instance's agent answers on agent.sock. */
async function uninstall(places: Places, io: Output): Promise<number> {
  const socket = join(places.runDir, "agent.sock");
  if (await answersOn(socket)) {
    const up = runningUp(places);
    const how = up !== null ? `'tidegate up' started it (pid ${up}): stop it with 'tidegate down' (or 'systemctl stop tidegate' where systemd runs it)` : "stop it first (SIGTERM to the agent's process, or 'tidegate down' when 'tidegate up' started it)";
    throw new AgentError("agent_running", `the agent of this instance is running (it answers on ${socket}); ${how}, then run --uninstall again`);
  }
  const mount = probeHost().cgroup2;
  if (mount === null) throw new UsageError("no cgroup v2 mount: nothing of tidegate's can be installed here");
  const r = await Capture.uninstall({ mount, cgroupName: places.cgroupName, pinDir: places.bpfPinDir });
  if (r.killed > 0) io.err(`killed ${r.killed} process(es) still running in ${join(mount, places.cgroupName)}\n`);
  io.out(`uninstalled: ${r.pins} pins removed from ${places.bpfPinDir}; cgroup ${join(mount, places.cgroupName)} ${r.cgroups ? "removed" : "was absent"}\n`);
  return 0;
}

function positiveDuration(v: unknown, flag: string, fallback: number): number {
  if (typeof v !== "string") return fallback;
  let ms: number;
  try {
    ms = parseDuration(v, flag);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (ms <= 0) throw new UsageError(`${flag} must be longer than 0s`);
  return ms;
}

export const agentCommand: Command = {
  name: "agent",
  summary: "run the node agent: join the identity server, keep the node's and workloads' SVIDs",
  usage: [
    "agent --server https://HOST:PORT --join-token TOKEN --server-fingerprint SHA256",
    "agent --server https://HOST:PORT --join-token-file FILE --trust-bundle FILE",
    "agent   (after a first join: the state in <state-dir>/agent/ is enough)",
  ],
  help: [
    "The first start joins: the agent fetches the server's bundle without trusting it, keeps only",
    "the root whose SHA-256 is --server-fingerprint (as 'tidegate token create' prints it; colons",
    "and case ignored), verifies the server against that root and its SPIFFE ID",
    "spiffe://TD/tidegate/server, and only then sends the join token with a CSR; the node's key never",
    "leaves the node. With --trust-bundle FILE (PEM roots or a SPIFFE bundle) no fingerprint is needed.",
    "A wrong fingerprint stops before any token is sent.",
    "",
    "As root on a host with cgroup v2 and eBPF, the agent also enforces: it attaches tidegate's",
    "programs to its cgroup tree (pinned, so they keep enforcing when it stops: only --uninstall",
    "removes them), loads the policy of --config (SIGHUP or a change of the file reloads it; a",
    "rejected reload keeps the last good one), runs the egress listener on a loopback port below",
    "1024, and logs denies with the process's identity. Elsewhere it runs identity only and says why.",
    "",
    "Settings not given as flags come from the agent: section of --config (docs/policy.md), when",
    "that file exists; an invalid config file stops the agent before it does anything.",
    "",
    "The node SVID and key are kept in <state-dir>/agent/ (keys 0600), so a restart needs no token",
    "until the node SVID expires. The agent syncs its entries every --sync-interval, renews SVIDs at",
    "half life (+-10 % jitter), and retries failures with capped exponential backoff (--retry-max).",
    "'tidegate status' shows what it holds. Exit 1 when it cannot start; 0 after SIGTERM/SIGINT.",
  ].join("\n"),
  options: {
    server: { type: "string", value: "URL", help: "the server's public listener, https://host:port" },
    "join-token": { type: "string", value: "TOKEN", help: "one-time join token (prefer --join-token-file: argv is visible to other users)" },
    "join-token-file": { type: "string", value: "FILE", help: "read the join token from FILE" },
    "server-fingerprint": { type: "string", value: "SHA256", help: "SHA-256 of the server's root CA, hex" },
    "trust-bundle": { type: "string", value: "FILE", help: "trust the roots in FILE (PEM or SPIFFE JWKS) instead of a fingerprint" },
    "sync-interval": { type: "string", value: "DURATION", help: "how often to sync entries and the bundle (default 5s)" },
    "retry-max": { type: "string", value: "DURATION", help: "longest wait between retries (default 60s)" },
    "no-capture": { type: "boolean", help: "identity only: no eBPF capture, no egress listener, no policy (tidegate run is refused)" },
    uninstall: { type: "boolean", help: "remove this instance's enforcement: kill what runs in its cgroups, detach and unpin the programs, remove the cgroups" },
  },
  run: async ({ values: flags, positionals, places, io }) => {
    if (positionals.length > 0) throw new UsageError(`agent takes no arguments, got ${JSON.stringify(positionals[0])}`);
    if (flags.uninstall === true) return uninstall(places, io);
    const config = configured(places.config);
    const values = mergeAgentSettings(flags, config?.agent ?? null);
    let joinToken = str(values["join-token"]);
    const tokenFile = str(values["join-token-file"]);
    if (joinToken !== undefined && tokenFile !== undefined) throw new UsageError("give --join-token or --join-token-file, not both");
    if (tokenFile !== undefined) {
      joinToken = new TextDecoder().decode(readInputFile(tokenFile, "agent --join-token-file")).trim();
      if (joinToken === "") throw new UsageError(`--join-token-file ${JSON.stringify(tokenFile)} is empty`);
    }
    const fingerprint = str(values["server-fingerprint"]);
    if (fingerprint !== undefined) {
      try {
        parseFingerprint(fingerprint);
      } catch (e) {
        throw new UsageError((e as Error).message.replace(/^agent: /, ""));
      }
    }
    const trustBundle = str(values["trust-bundle"]);
    if (fingerprint !== undefined && trustBundle !== undefined) throw new UsageError("give --server-fingerprint or --trust-bundle, not both");
    // The flag is checked before anything is started or logged (the config's agent.server was
    // checked when the config loaded); the agent logs its origin only.
    if (str(flags.server) !== undefined) httpsOriginFlag(str(flags.server)!, "--server");
    const serverUrl = str(values.server);
    const logger = createLogger({ write: (l) => io.err(l) });
    // SIGHUP's default action ends the process: it is ours from before the start until after the
    // stop, so a reload while starting is applied once started and one while draining is ignored.
    let reloadable: { reload(): boolean } | null = null;
    let reloadWanted = false;
    const reload = () => {
      if (reloadable === null) reloadWanted = true;
      else void reloadable.reload();
    };
    process.on("SIGHUP", reload);
    let agent;
    try {
      agent = await startAgent({
        places,
        syncIntervalMs: positiveDuration(values["sync-interval"], "--sync-interval", DEFAULT_SYNC_INTERVAL_MS),
        retryMaxMs: positiveDuration(values["retry-max"], "--retry-max", DEFAULT_RETRY_MAX_MS),
        logger,
        capture: flags["no-capture"] !== true,
        ...(config !== null ? { audit: config.audit } : {}),
        ...(serverUrl !== undefined ? { serverUrl } : {}),
        ...(joinToken !== undefined ? { joinToken } : {}),
        ...(fingerprint !== undefined ? { fingerprint } : {}),
        ...(trustBundle !== undefined ? { trustBundle } : {}),
      });
    } catch (e) {
      process.off("SIGHUP", reload);
      throw e;
    }
    reloadable = agent;
    if (reloadWanted) void agent.reload();
    const heap = heapGovernor({ churn: connectionsClosed });
    void agent.ready.then(() => dropStartupCode(logger, "agent")).then(() => heap.start());
    await new Promise<void>((resolve) => {
      const done = () => {
        process.off("SIGTERM", done);
        process.off("SIGINT", done);
        resolve();
      };
      process.on("SIGTERM", done);
      process.on("SIGINT", done);
    });
    reloadable = { reload: () => false };
    heap.stop();
    const again = hurryOnSecondSignal(() => agent.hurry(), (l) => io.err(l));
    await agent.stop();
    again.off();
    process.off("SIGHUP", reload);
    return 0;
  },
};
