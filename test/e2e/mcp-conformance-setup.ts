/**
 * The stand of the MCP conformance end-to-end test (mcp-conformance.test.ts): the MCP stand of
 * mcp-setup.ts built with its own instances (e2e-mcpc-a, e2e-mcpc-b), address (127.0.0.100), name
 * (everything.mcpc.test) and an allow-all tool filter (`mcp: { tools: {} }`) on A's egress rule and
 * B's inbound rule, and the MCP project's conformance tool (`@modelcontextprotocol/conformance`,
 * its server suite) run from node_modules with this Bun, offline:
 * - straight to server-everything (`runStraight`), from the test;
 * - as workload `client` on agent A (`runThroughTidegate`), to http://everything.mcpc.test/mcp:
 *   A intercepts that plain HTTP and re-originates it with mTLS to B's listener, which relays it
 *   to server-everything. The tool takes a URL and resolves its name through the system; so it
 *   runs in a private mount namespace (`unshare -m`, private propagation) whose /etc/hosts is a
 *   bind-mounted copy that adds the name (the host's file is not touched; the namespace ends with
 *   the tool). A checks that name against its own dns.hosts, as it would any name.
 * Results: `-o DIR` makes the tool write `DIR/server-<scenario>-<ISO time>/checks.json` (an array
 * of checks, each with `id` and `status` SUCCESS, FAILURE, WARNING...) per scenario it ran; its
 * stdout names every scenario it starts (`=== Running scenario: NAME ===`). A scenario that threw
 * leaves no checks.json: it counts as failed.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, type RunResult } from "../helpers/binary.ts";
import { setUp, type Stand } from "./mcp-setup.ts";

export { tearDown } from "./mcp-setup.ts";

export const INSTANCES = { a: "e2e-mcpc-a", b: "e2e-mcpc-b" } as const;
/** B's listeners, and what everything.mcpc.test is in A's dns.hosts and the workload's /etc/hosts. */
export const LISTENER = "127.0.0.100";
export const HOST = "everything.mcpc.test";
/** The conformance tool's command line entry (its package's `bin.conformance`). */
export const CONFORMANCE_CLI = join(REPO, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
/** How long one run of the whole suite may take before it is killed. */
const RUN_TIMEOUT_MS = 45_000;

export interface Check {
  readonly id: string;
  readonly status: string;
  readonly errorMessage?: string;
  readonly details?: unknown;
}

export interface Scenario {
  readonly scenario: string;
  /** At least one check succeeded and none failed (WARNING and INFO do not count either way). */
  readonly passed: boolean;
  /** Its checks.json; empty when the tool wrote none (the scenario threw). */
  readonly checks: Check[];
}

export interface ConformanceRun {
  readonly url: string;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
  /** Every scenario the tool started, in its order. */
  readonly scenarios: Scenario[];
}

export interface ConformanceStand extends Stand {
  /** The suite straight to server-everything, http://127.0.0.1:PORT/mcp. */
  runStraight(): Promise<ConformanceRun>;
  /** The suite as workload `client` on A, to http://everything.mcpc.test/mcp. */
  runThroughTidegate(): Promise<ConformanceRun>;
}

const SCENARIO_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** The tool's results: the scenarios its stdout names, each with the checks.json it wrote to `out`. */
function results(url: string, r: RunResult, out: string, ms: number): ConformanceRun {
  const named = [...r.stdout.matchAll(/^=== Running scenario: (\S+) ===$/gm)].map((m) => m[1]!);
  if (named.length === 0) throw new Error(`the conformance tool (to ${url}) ran no scenario; exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
  const written = new Map<string, Check[]>();
  for (const name of existsSync(out) ? readdirSync(out) : []) {
    const m = SCENARIO_DIR.exec(name);
    if (m === null) continue;
    if (written.has(m[1]!)) throw new Error(`the conformance tool wrote two result folders for ${m[1]} in ${out}`);
    written.set(m[1]!, JSON.parse(readFileSync(join(out, name, "checks.json"), "utf8")) as Check[]);
  }
  const scenarios = named.map((scenario) => {
    const checks = written.get(scenario) ?? [];
    return { scenario, checks, passed: checks.some((c) => c.status === "SUCCESS") && !checks.some((c) => c.status === "FAILURE") };
  });
  return { url, code: r.code, stdout: r.stdout, stderr: r.stderr, ms, scenarios };
}

/** A folder the workload (nobody) can write, below the stand's. */
function outDir(s: Stand, name: string): string {
  const out = join(s.dir, name);
  mkdirSync(out);
  chmodSync(out, 0o1777);
  return out;
}

export async function setUpConformance(): Promise<ConformanceStand> {
  const s = await setUp({ label: "mcpc", instances: INSTANCES, listener: LISTENER, host: HOST, tools: { a: "{}", b: "{}" } });
  // the workload's /etc/hosts: the host's, plus the name A intercepts
  const hosts = join(s.dir, "workload-hosts");
  writeFileSync(hosts, `${readFileSync("/etc/hosts", "utf8").trimEnd()}\n${LISTENER} ${HOST}\n`, { mode: 0o644 });
  chmodSync(hosts, 0o644);

  const straightUrl = `http://127.0.0.1:${s.ports.everythingBackend}/mcp`;
  const throughUrl = `http://${HOST}/mcp`;
  return Object.assign(s, {
    runStraight: async (): Promise<ConformanceRun> => {
      const out = outDir(s, "conformance-straight");
      const t0 = performance.now();
      const p = Bun.spawn([process.execPath, CONFORMANCE_CLI, "server", "--url", straightUrl, "-o", out], {
        cwd: REPO,
        env: { PATH: "/usr/bin:/bin", BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
        timeout: RUN_TIMEOUT_MS,
        killSignal: "SIGTERM",
      });
      const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return results(straightUrl, { code, stdout, stderr }, out, performance.now() - t0);
    },
    runThroughTidegate: async (): Promise<ConformanceRun> => {
      const out = outDir(s, "conformance-through");
      const t0 = performance.now();
      const r = await s.runWorkload([process.execPath, CONFORMANCE_CLI, "server", "--url", throughUrl, "-o", out], {
        // $0 is the hosts file; the rest is tidegate run ... (exec'd, so the namespace dies with it)
        prefix: ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts],
        timeoutMs: RUN_TIMEOUT_MS,
      });
      return results(throughUrl, r, out, performance.now() - t0);
    },
  });
}
