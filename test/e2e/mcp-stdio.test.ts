// Issue 10 end to end (root; CI runs it): MCP over stdio through `tidegate run --mcp-stdio`. The MCP
// host is the SDK's own client (mcp-client.ts with StdioClientTransport), run as workload `host`
// (user nobody) through `tidegate run`; it starts server-everything in stdio mode with
// `tidegate run --mcp-stdio --workload everything -- ...` as nobody, so through run.sock (the run
// group is nogroup, nobody's own; `run_by` names nobody). The agent attests that process (in the
// host's cgroup: it is spiffe://example.org/mcp-host), finds the stdio rule for it and the server's
// identity, and sits on the server's stdin and stdout.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { probeHost } from "../../src/runtime/host.ts";
import { BINARY, REPO } from "../helpers/binary.ts";
import { waitFor } from "../helpers/processes.ts";
import { startDomain, type Agent, type Domain } from "./domain.ts";
import type { ClientInput, StepResult } from "./mcp-client.ts";
import { watchedAcrossTwoChanges } from "./mcp-steps.ts";

const T = 60_000;
const mount = probeHost().cgroup2;
const can = process.getuid?.() === 0 && mount !== null;
if (!can && !process.env.CI) console.warn("e2e mcp stdio: skipped (needs root and cgroup v2)");

const INSTANCE = "e2e-mcps";
const ID = { host: "spiffe://example.org/mcp-host", stranger: "spiffe://example.org/stranger", server: "spiffe://example.org/mcp/everything-stdio", same: "spiffe://example.org/mcp/same" } as const;
const RULE = "host-everything";
const DENIED = "get-tiny-image";
const CLIENT = join(import.meta.dir, "mcp-client.ts");
const EVERYTHING = join(REPO, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
const ENV = { PATH: "/usr/bin:/bin", BUN_RUNTIME_TRANSPILER_CACHE_PATH: "0" };

let domain: Domain;
let agent: Agent;

/** mcp-client.ts as workload `workload`, starting server-everything through `tidegate run --mcp-stdio`. */
function client(workload: string, steps: ClientInput["steps"]): Promise<{ code: number; results: StepResult[]; stderr: string }> {
  return clientWith({}, workload, steps);
}

/** `client`, with more of mcp-client.ts's input (`watch_tools`). */
async function clientWith(extra: Partial<ClientInput>, workload: string, steps: ClientInput["steps"]): Promise<{ code: number; results: StepResult[]; stderr: string }> {
  const input: ClientInput = { ...extra, stdio: { command: BINARY, args: ["run", "--mcp-stdio", ...agent.flags, "--workload", "everything", "--", process.execPath, EVERYTHING, "stdio"], env: ENV }, steps };
  const r = await agent.cli(["run", "--workload", workload, "--user", "nobody", "--", process.execPath, CLIENT, JSON.stringify(input)], ENV);
  const results = r.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as StepResult);
  return { code: r.code, results, stderr: r.stderr };
}

/** Writes the agent's config (stdio.yaml) and waits until it loaded it. */
async function reload(text: string): Promise<void> {
  const loads = () => agent.log().filter((l) => l.event === "policy_loaded").length;
  const before = loads();
  writeFileSync(join(domain.dir, "stdio.yaml"), text);
  await waitFor("the agent to load its changed config", () => loads() > before || undefined, 15_000);
}

/** The tool_call of the echo of message `m` (its arguments' hash: {"message": M} is its own canonical form). */
function echoEvent(m: string) {
  const hash = createHash("sha256").update(JSON.stringify({ message: m })).digest("hex");
  return waitFor(`the tool_call of echo ${m}`, () => agent.audit().find((l) => l.type === "tool_call" && l.args_sha256 === hash), 15_000);
}

/** `tidegate run ARGS` by nobody (as workload host), so through run.sock. */
async function asHost(args: string[]): Promise<{ code: number; stderr: string }> {
  const r = await agent.cli(["run", "--workload", "host", "--user", "nobody", "--", BINARY, "run", ...agent.flags, ...args], ENV);
  return { code: r.code, stderr: r.stderr };
}

describe.skipIf(!can)("MCP over stdio: tidegate run --mcp-stdio", () => {
  beforeAll(async () => {
    domain = await startDomain(INSTANCE);
    await domain.entry("stdio", ID.host, ["tidegate:workload:host"]);
    await domain.entry("stdio", ID.stranger, ["tidegate:workload:stranger"]);
    await domain.entry("stdio", ID.server, ["tidegate:workload:everything"]);
    await domain.entry("stdio", ID.same, ["tidegate:workload:same"]);
    agent = await domain.startAgent(
      INSTANCE,
      "stdio",
      `trust_domain: example.org
agent: { run_group: nogroup }
workloads:
  - { name: host, id: ${ID.host}, user: nobody }
  - { name: stranger, id: ${ID.stranger}, user: nobody }
  - { name: everything, id: ${ID.server}, user: daemon, run_by: { users: [nobody] } }
  - { name: same, id: ${ID.same}, user: nobody, run_by: { users: [nobody] } }
stdio:
  - name: ${RULE}
    from: ${ID.host}
    server: [${ID.server}, ${ID.same}]
    mcp: { tools: { deny: [${DENIED}] } }
`,
      [],
    );
  }, T);

  afterAll(async () => {
    await domain?.tearDown();
  }, T);

  test("the host lists the tools without the denied one, calls an allowed tool, and gets -32001 for the denied one", async () => {
    const marker = `tg-stdio-${crypto.randomUUID()}`;
    const r = await client("host", [{ op: "list" }, { op: "call", name: "echo", args: { message: marker } }, { op: "call", name: DENIED, args: {} }, { op: "progress", name: "trigger-long-running-operation", args: { duration: 2, steps: 4 } }]);
    expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
    const [list, echo, denied, progress] = r.results;
    expect(list?.tools).toContain("echo");
    expect(list?.tools).not.toContain(DENIED);
    expect(list?.tools?.length).toBeGreaterThan(5);
    expect({ ok: echo?.ok, text: JSON.stringify(echo?.content) }).toEqual({ ok: true, text: expect.stringContaining(marker) });
    expect({ ok: denied?.ok, code: denied?.code }).toEqual({ ok: false, code: -32001 });
    expect(denied?.message).toContain(`rule ${RULE}`);
    expect({ ok: progress?.ok, enough: (progress?.progress ?? 0) >= 2, values: progress?.progress_values }).toEqual({ ok: true, enough: true, values: expect.anything() });
    // the audit: each call with the host's and the server's identities, the arguments only hashed
    const calls = await waitFor("the tool_call events", () => {
      const c = agent.audit().filter((l) => l.type === "tool_call");
      return c.length >= 3 ? c : undefined;
    });
    const of = (tool: string) => calls.find((c) => c.tool === tool);
    expect([of("echo")?.caller_id, of("echo")?.server_id, of("echo")?.rule, of("echo")?.decision, of("echo")?.is_error]).toEqual([ID.host, ID.server, RULE, "allow", false]);
    expect([of(DENIED)?.decision, of(DENIED)?.reason]).toEqual(["deny", "tool_denied"]);
    expect(JSON.stringify(agent.audit())).not.toContain(marker);
    expect(agent.log().some((l) => l.event === "run_mcp_stdio" && l.caller_id === ID.host && l.rule === RULE)).toBe(true);
    expect(agent.log().some((l) => l.event === "run_started" && l.workload === "everything")).toBe(true);
  }, T);

  test("a stdio server cannot be started without --mcp-stdio by a caller other than root (its pipes would be the caller's)", async () => {
    const r = await asHost(["--workload", "everything", "--", "/bin/true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("run_mcp_stdio_required");
  }, T);

  test("--mcp-stdio is refused when the server would run as the caller's own user", async () => {
    const r = await asHost(["--mcp-stdio", "--workload", "same", "--", "/bin/true"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("run_mcp_same_user");
  }, T);

  test("a server that ignores the hang-up of a caller gone for good is killed after the grace period", async () => {
    const seenBefore = agent.log().filter((l) => l.event === "run_mcp_stdio").length;
    const flag = join(domain.dir, "drop", "hup-ignored");
    mkdirSync(join(domain.dir, "drop"), { mode: 0o777, recursive: true });
    chmodSync(join(domain.dir, "drop"), 0o777);
    const script = `trap '' HUP TERM; : > ${flag}; exec sleep 120`;
    const outer = Bun.spawn([BINARY, ...agent.flags, "run", "--workload", "host", "--user", "nobody", "--", BINARY, "run", ...agent.flags, "--mcp-stdio", "--workload", "everything", "--", "/bin/sh", "-c", script], { cwd: REPO, env: ENV, stdin: "pipe", stdout: "ignore", stderr: "ignore" });
    // this run's lines, matched by the caller's pid (the agent's output may arrive between two lines)
    const mcpLine = await waitFor("the stdio run", () => agent.log().filter((l) => l.event === "run_mcp_stdio")[seenBefore], 15_000);
    const caller = mcpLine.caller_pid as number;
    const started = await waitFor("the server's run", () => agent.log().find((l) => l.event === "run_started" && l.caller_pid === caller), 15_000);
    const server = started.pid as number;
    await waitFor("the server to ignore SIGHUP", () => existsSync(flag) || undefined, 15_000);
    process.kill(caller, "SIGKILL"); // the MCP host's side is gone at once, without closing anything in order
    await waitFor("the hang-up to be logged", () => agent.log().some((l) => l.event === "run_caller_gone" && l.pid === server) || undefined, 10_000);
    expect(existsSync(`/proc/${server}`)).toBe(true); // it ignored SIGHUP (and its stdin's end)
    await waitFor("the server to be killed", () => (existsSync(`/proc/${server}`) ? undefined : true), 20_000);
    outer.kill("SIGKILL");
    await outer.exited;
  }, T);

  test("a reload applies to the next request of a stdio server already running: a narrowed rule refuses echo, a removed one every request", async () => {
    const original = readFileSync(join(domain.dir, "stdio.yaml"), "utf8");
    const [m1, m2] = [`tg-stdio-r1-${crypto.randomUUID()}`, `tg-stdio-r2-${crypto.randomUUID()}`];
    const [f1, f2] = [join(domain.dir, `release-${crypto.randomUUID()}`), join(domain.dir, `release-${crypto.randomUUID()}`)];
    const running = client("host", [
      { op: "call", name: "echo", args: { message: m1 } },
      { op: "hold", until: f1 },
      { op: "call", name: "echo", args: { message: m2 } },
      { op: "hold", until: f2 },
      { op: "list" },
    ]);
    try {
      expect(await echoEvent(m1)).toMatchObject({ decision: "allow", rule: RULE });
      const narrowed = original.replace(`deny: [${DENIED}]`, `deny: [${DENIED}, echo]`);
      expect(narrowed).not.toBe(original);
      await reload(narrowed);
      writeFileSync(f1, "");
      expect(await echoEvent(m2)).toMatchObject({ decision: "deny", reason: "tool_denied", rule: RULE });
      const removed = original.replace(/^stdio:\n(  .*\n)+/m, "stdio: []\n");
      expect(removed).not.toContain(RULE);
      await reload(removed);
      writeFileSync(f2, "");
      const r = await running;
      expect(r.code).toBe(0);
      const echoes = r.results.filter((x) => x.op === "call");
      expect(echoes.map((x) => [x.ok, x.code ?? null])).toEqual([[true, null], [false, -32001]]);
      const list = r.results.find((x) => x.op === "list");
      expect({ ok: list?.ok, code: list?.code }).toEqual({ ok: false, code: -32001 });
      expect(list?.message).toContain(`no stdio rule lets ${ID.host} use ${ID.server} any more`);
    } finally {
      writeFileSync(f1, "");
      writeFileSync(f2, "");
      await running.catch(() => undefined);
      await reload(original);
    }
  }, 2 * T);

  test("a reload that changes what the client may list: the SDK client is told (tools/list_changed) and lists again by itself", async () => {
    const original = readFileSync(join(domain.dir, "stdio.yaml"), "utf8");
    const [m1, m2] = [`tg-stdio-lc1-${crypto.randomUUID()}`, `tg-stdio-lc2-${crypto.randomUUID()}`];
    const [f1, f2] = [join(domain.dir, `release-${crypto.randomUUID()}`), join(domain.dir, `release-${crypto.randomUUID()}`)];
    const running = clientWith({ watch_tools: true }, "host", watchedAcrossTwoChanges([m1, m2], [f1, f2], DENIED));
    try {
      await echoEvent(m1); // the first list is in
      await reload(original.replace(`deny: [${DENIED}]`, `deny: [${DENIED}, echo]`));
      writeFileSync(f1, "");
      await echoEvent(m2);
      await reload(original.replace(`deny: [${DENIED}]`, "deny: [no-such-tool]"));
      writeFileSync(f2, "");
      const r = await running;
      expect(r.code).toBe(0);
      const lists = r.results.filter((x) => x.op === "list" || x.op === "refreshed");
      expect(lists.map((x) => x.ok)).toEqual([true, true, true]);
      const [first, narrowed, widened] = lists.map((x) => x.tools!);
      expect(first).toContain("echo");
      expect(first).not.toContain(DENIED);
      expect(narrowed).toEqual(first!.filter((t) => t !== "echo"));
      expect(widened).toContain(DENIED);
      expect(widened).toContain("echo");
      expect(r.results.filter((x) => x.op === "call").map((x) => [x.ok, x.code ?? null])).toEqual([[true, null], [false, -32001]]);
      const ended = await waitFor("run_mcp_ended", () => agent.log().filter((l) => l.event === "run_mcp_ended").at(-1), 15_000);
      expect(ended.announced).toBe(2);
    } finally {
      writeFileSync(f1, "");
      writeFileSync(f2, "");
      await running.catch(() => undefined);
      await reload(original);
    }
  }, 2 * T);

  const deleted: [string, string, string, string][] = [
    ["the server's", ID.server, "tidegate:workload:everything", `workload everything no longer has identity ${ID.server}`],
    ["the calling host's", ID.host, "tidegate:workload:host", `the calling process no longer has identity ${ID.host}`],
  ];
  for (const [whose, id, selector, said] of deleted) {
    test(`${whose} entry deleted while the server runs: its next request is refused (identity_revoked); registered again, a new server works`, async () => {
      const until = join(domain.dir, `release-${crypto.randomUUID()}`);
      const marker = `tg-stdio-rv-${crypto.randomUUID()}`;
      const running = client("host", [{ op: "call", name: "echo", args: { message: marker } }, { op: "hold", until }, { op: "list" }]);
      const dropped = () => agent.log().filter((l) => l.event === "svid_dropped" && l.spiffe_id === id).length;
      try {
        await echoEvent(marker);
        const before = dropped();
        await domain.deleteEntry(id);
        await waitFor(`the agent to drop the SVID of ${id}`, () => dropped() > before || undefined, 15_000);
        writeFileSync(until, "");
        const r = await running;
        const list = r.results.find((x) => x.op === "list");
        expect({ ok: list?.ok, code: list?.code }).toEqual({ ok: false, code: -32001 });
        expect(list?.message).toContain(said);
      } finally {
        writeFileSync(until, "");
        await running.catch(() => undefined);
        const entryId = await domain.entry("stdio", id, [selector]);
        await waitFor(`the agent to hold the SVID of ${id} again`, () => existsSync(join(domain.dir, "stdio-state", "agent", "svids", `${entryId}.key`)) || undefined, 20_000);
      }
      const again = await client("host", [{ op: "call", name: "echo", args: { message: "again" } }]);
      expect(again.results[0]).toMatchObject({ op: "call", ok: true });
    }, 2 * T);
  }

  test("a host no stdio rule names is refused, and the server never starts", async () => {
    const before = agent.log().filter((l) => l.event === "run_started").length;
    const r = await client("stranger", [{ op: "list" }]);
    expect(r.code).toBe(2);
    expect(r.results[0]).toMatchObject({ op: "connect", ok: false });
    expect(r.stderr).toContain("run_mcp_no_rule");
    const refused = agent.log().find((l) => l.event === "run_refused" && l.code === "run_mcp_no_rule");
    expect(String(refused?.reason)).toContain(ID.stranger);
    expect(r.stderr).toContain(`(tidegate policy explain --from ${ID.stranger} --stdio ${ID.server} says what each rule lacks)`);
    // the server's runs go through run.sock, each logged run_started (the first test's was): none now
    const started = agent.log().filter((l) => l.event === "run_started").slice(before);
    expect(started.filter((l) => l.workload === "everything")).toEqual([]);
  }, T);
});
