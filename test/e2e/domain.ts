/**
 * A trust domain on this host for an end-to-end test: the built server (trust domain
 * example.org) and agents, each process with its own instance, state, run and audit folders and
 * config under one mkdtemp folder, so cgroups (`tidegate-INSTANCE`) and pins are their own.
 * Everything made is undone by `tearDown`, last first; `agent --uninstall` runs before (leftovers of
 * an earlier run) and after. Stands of newer tests build on it (mcp-stdio.test.ts).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readAudit, type AuditLine } from "../helpers/audit-files.ts";
import { cleanupStack, cliOk, type LogLine, parseLog, startJoinedAgent, startServer } from "../helpers/e2e-kit.ts";
import { tidegate, type RunResult } from "../helpers/binary.ts";
import type { Running } from "../helpers/processes.ts";

export type { LogLine } from "../helpers/e2e-kit.ts";

export interface Agent {
  readonly flags: string[];
  readonly process: Running;
  log(): LogLine[];
  audit(): AuditLine[];
  /** `tidegate <this agent's flags> ARGS` (global flags go first: ARGS may end in a command after --). */
  cli(args: string[], env?: Record<string, string>): Promise<RunResult>;
}

export interface Domain {
  readonly dir: string;
  /** Registers `id` for `node` with `selectors`; its entry id. */
  entry(node: string, id: string, selectors: string[]): Promise<string>;
  /** Deletes the entry `entry` last registered for `id`. */
  deleteEntry(id: string): Promise<void>;
  /** Writes the agent's config, checks it loads, starts it joined as `node`, and waits until it captures and holds SVIDs of `held`. */
  startAgent(instance: string, node: string, config: string, held: string[]): Promise<Agent>;
  /** What the server and every agent wrote. */
  allOutput(): string;
  tearDown(): Promise<void>;
}

const cli = cliOk;

/** `name` is the folder's prefix and the server's instance. */
export async function startDomain(name: string): Promise<Domain> {
  const cleanups = cleanupStack(name);
  const tearDown = () => cleanups.run();
  const running: Running[] = [];
  try {
    const dir = mkdtempSync(join(tmpdir(), `tidegate-test-${name}-`));
    chmodSync(dir, 0o711); // workloads (nobody) read the interception CA bundles below it
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const d = (n: string) => {
      const p = join(dir, n);
      mkdirSync(p, { recursive: true });
      return p;
    };
    const serverFlags = ["--instance", name, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
    const info = await startServer(dir, serverFlags);
    const server = info.server;
    running.push(server);
    cleanups.push(() => server.stop());
    const entries = new Map<string, string>();
    return {
      dir,
      entry: async (node, id, selectors) => {
        const out = await cli(["entry", "create", "--spiffe-id", id, "--node", node, ...selectors.flatMap((s) => ["--selector", s]), "--json", ...serverFlags]);
        const entryId = (JSON.parse(out) as { id: string }).id;
        entries.set(id, entryId);
        return entryId;
      },
      deleteEntry: async (id) => {
        await cli(["entry", "delete", entries.get(id)!, ...serverFlags]);
        entries.delete(id);
      },
      startAgent: async (instance, node, config, held) => {
        const flags = ["--instance", instance, "--state-dir", d(`${node}-state`), "--run-dir", d(`${node}-run`), "--config", join(dir, `${node}.yaml`), "--audit-dir", join(dir, `${node}-audit`)];
        await tidegate(["agent", "--uninstall", ...flags]); // leftovers of an earlier run
        cleanups.push(() => tidegate(["agent", "--uninstall", ...flags]));
        writeFileSync(join(dir, `${node}.yaml`), config);
        const check = await tidegate(["policy", "check", join(dir, `${node}.yaml`)]);
        if (check.code !== 0) throw new Error(`e2e ${name}: ${node}.yaml does not load: ${check.stdout}${check.stderr}`);
        const ready = () => held.every((id) => existsSync(join(dir, `${node}-state`, "agent", "svids", `${entries.get(id)}.key`)));
        const agent = await startJoinedAgent({ dir, serverFlags, server: info.public, key: node, node, flags, what: `agent ${node} to capture, holding ${held.join(" and ") || "nothing"}`, ready });
        running.push(agent);
        cleanups.push(() => agent.stop());
        return {
          flags,
          process: agent,
          log: () => parseLog(agent),
          audit: () => readAudit(join(dir, `${node}-audit`)),
          cli: (args, env) => tidegate([...flags, ...args], env === undefined ? {} : { env }),
        };
      },
      allOutput: () => running.map((r) => r.output()).join("\n"),
      tearDown,
    };
  } catch (e) {
    await tearDown();
    throw e;
  }
}
