// No private key leaves a node (docs/security-review.md, "Keys"): the built `tidegate server`
// (instance e2e-keys, on 127.0.0.70) with SVIDs of a few seconds and one agent joined to it, with
// capture. Every private key the agent makes while its node SVID and two workload SVIDs are issued
// and renewed (each renewal is a new key) is collected from its state folder; none of them is
// anywhere in the server's state folder (datastore, WAL, CA files), its audit folder, its stdout
// and stderr, or its process's memory. Controls show each search can find something: the server's
// CA key in its memory and its state folder, the entries' SPIFFE IDs in the datastore, the node's
// SPIFFE ID in the server's audit log and output, and the agent's current keys in the agent's own
// memory.
// Needs root (the agent's capture: cgroups, eBPF; reading another process's memory).
// Addresses: 127.0.0.70 only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { tidegate } from "../helpers/binary.ts";
import { cleanupStack, cliOk, freePort, startJoinedAgent, startServer } from "../helpers/e2e-kit.ts";
import { waitFor, type Running } from "../helpers/processes.ts";
import { describeHits, keyNeedles, processTree, scanPids, textNeedle, type Needle } from "../helpers/proc-scan.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("keys-stay.test.ts: CI must run as root");
if (!isRoot) console.warn("keys-stay.test.ts: skipped (needs root: the agent's capture, other processes' memory)");

const INSTANCE = "e2e-keys";
const ADDR = "127.0.0.70";
const NODE = "keys-a";
const TD = "spiffe://example.org";
const ID = { one: `${TD}/keys/one`, two: `${TD}/keys/two` } as const;
/** Node and workload SVIDs live this long: renewed at about half of it. */
const TTL_S = 8;

const cleanups = cleanupStack("keys");
let dir = "";
let server: Running;
let agent: Running;
const entryIds: string[] = [];
/** Every distinct private key PEM the agent held, by file (relative to its state folder). */
const agentKeys = new Map<string, Set<string>>();

/**
 * Regular files below `root`, recursively (sockets, links and the like left out). A file gone
 * between the listing and its lstat is left out too: the running agent writes its keys to a
 * temporary name and renames it (a CI run failed on one such name, ENOENT).
 */
function filesBelow(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: "utf8" })
    .map((n) => join(root, n))
    .filter((p) => lstatSync(p, { throwIfNoEntry: false })?.isFile() === true);
}

/** Reads every private key file of the agent's state folder now, keeping each new one. */
function collectAgentKeys(): void {
  const state = join(dir, "a-state");
  for (const f of filesBelow(state)) {
    let pem: string;
    try {
      pem = readFileSync(f, "utf8");
    } catch {
      continue; // replaced meanwhile (written to a temporary name, renamed)
    }
    if (!pem.includes("PRIVATE KEY-----")) continue;
    const name = relative(state, f);
    if (!agentKeys.has(name)) agentKeys.set(name, new Set());
    agentKeys.get(name)!.add(pem);
  }
}

/** Where each needle occurs in `bytes`, as "WHERE: LABEL". */
function searchIn(where: string, bytes: Uint8Array, needles: readonly Needle[]): string[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return needles.filter((n) => b.indexOf(n.bytes) >= 0).map((n) => `${where}: ${n.label}`);
}

function searchFiles(root: string, needles: readonly Needle[]): string[] {
  return filesBelow(root).flatMap((f) => searchIn(relative(dir, f), readFileSync(f), needles));
}

/** Needles for every key the agent held; labels start with "agent ". */
function agentNeedles(): Needle[] {
  return [...agentKeys].flatMap(([file, pems]) => [...pems].flatMap((pem, i) => keyNeedles(`agent ${file} #${i + 1}`, pem)));
}

async function setUp(): Promise<void> {
  dir = mkdtempSync(join(tmpdir(), "tidegate-test-e2e-keys-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const d = (n: string) => {
    const p = join(dir, n);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const serverFlags = ["--instance", INSTANCE, "--state-dir", d("server-state"), "--run-dir", d("server-run"), "--server-config", join(dir, "server.yaml"), "--audit-dir", d("server-audit")];
  const flagsA = ["--instance", INSTANCE, "--state-dir", d("a-state"), "--run-dir", d("a-run"), "--config", join(dir, "a.yaml"), "--audit-dir", join(dir, "a-audit")];
  await tidegate(["agent", "--uninstall", ...flagsA]); // leftovers of an earlier run
  cleanups.push(() => tidegate(["agent", "--uninstall", ...flagsA]));

  const pub = freePort(ADDR);
  let api = freePort(ADDR);
  while (api === pub) api = freePort(ADDR);
  const yaml = ["listen:", `  public: ${ADDR}:${pub}`, `  api: ${ADDR}:${api}`, "svid:", `  default_ttl: ${TTL_S}s`, `  node_ttl: ${TTL_S}s`, ""].join("\n");
  const info = await startServer(dir, serverFlags, yaml);
  server = info.server;
  cleanups.push(() => server.stop());
  if (info.public !== `${ADDR}:${pub}`) throw new Error(`the server listens on ${info.public}, not ${ADDR}:${pub}`);
  for (const [id, selector] of [[ID.one, "tidegate:workload:one"], [ID.two, "tidegate:workload:two"]] as const) {
    entryIds.push((JSON.parse(await cliOk(["entry", "create", "--spiffe-id", id, "--node", NODE, "--selector", selector, "--json", ...serverFlags])) as { id: string }).id);
  }
  writeFileSync(join(dir, "a.yaml"), "trust_domain: example.org\n");
  const ready = () => entryIds.every((e) => existsSync(join(dir, "a-state", "agent", "svids", `${e}.key`)));
  agent = await startJoinedAgent({ dir, serverFlags, server: info.public, key: "a", node: NODE, flags: flagsA, what: "the agent to capture, holding both workload SVIDs", ready });
  cleanups.push(() => agent.stop());
}

describe.skipIf(!isRoot)("no private key leaves a node", () => {
  beforeAll(async () => {
    try {
      await setUp();
    } catch (e) {
      await cleanups.run();
      throw e;
    }
  }, 120_000);

  afterAll(async () => {
    await cleanups.run();
  }, 60_000);

  test("none of the agent's keys (node and workload SVIDs, issued and renewed) is in the server's files, audit log, output or memory", async () => {
    // Issued, then renewed at least once each: every renewal writes a new key.
    const files = ["agent/node.key", ...entryIds.map((e) => `agent/svids/${e}.key`)];
    await waitFor(
      "the node SVID and both workload SVIDs renewed at least once",
      () => {
        collectAgentKeys();
        return files.every((f) => (agentKeys.get(f)?.size ?? 0) >= 2) ? true : undefined;
      },
      60_000,
      200,
      agent,
    );
    collectAgentKeys();
    await Bun.sleep(1500); // what the server got has reached its datastore (group commit) and logs

    const agentN = agentNeedles();
    const keyCount = [...agentKeys.values()].reduce((n, s) => n + s.size, 0);
    expect(keyCount).toBeGreaterThanOrEqual(6);

    // controls: what each search must find
    const serverState = join(dir, "server-state");
    const caKeyFile = filesBelow(join(serverState, "server", "ca")).find((f) => readFileSync(f, "latin1").includes("-----BEGIN PRIVATE KEY-----"));
    if (caKeyFile === undefined) throw new Error(`no PEM private key in ${serverState}: ${filesBelow(serverState).join(", ")}`);
    const controls: Needle[] = [
      ...keyNeedles(`control server key ${relative(serverState, caKeyFile)}`, readFileSync(caKeyFile, "utf8")),
      ...textNeedle("control entry one", ID.one),
      ...textNeedle("control entry two", ID.two),
      ...textNeedle("control node", `${TD}/tidegate/agent/${NODE}`),
    ];
    const needles = [...agentN, ...controls];

    const stateHits = searchFiles(serverState, needles);
    const auditHits = searchFiles(join(dir, "server-audit"), needles);
    const runHits = searchFiles(join(dir, "server-run"), needles);
    const outputHits = searchIn("server output", new TextEncoder().encode(server.output()), needles);
    const pids = processTree(server.proc.pid);
    const { reports, gone } = scanPids(pids, needles);
    expect(gone).toEqual([]);
    const memoryHits = describeHits(reports);

    const agentHits = (hits: string[]) => hits.filter((h) => /: agent /.test(h));
    expect({
      state: agentHits(stateHits),
      audit: agentHits(auditHits),
      run: agentHits(runHits),
      output: agentHits(outputHits),
      memory: agentHits(memoryHits),
    }).toEqual({ state: [], audit: [], run: [], output: [], memory: [] });

    // the controls were found, so each search could have found a key
    const has = (hits: string[], re: RegExp) => hits.some((h) => re.test(h));
    expect(has(memoryHits, /: control server key .* in memory /)).toBe(true);
    expect(has(stateHits, /: control server key /)).toBe(true);
    const datastore = stateHits.filter((h) => /datastore/.test(h));
    expect(has(datastore, /control entry one/) && has(datastore, /control entry two/)).toBe(true);
    expect(has(auditHits, /control node/)).toBe(true);
    expect(has(outputHits, /control node/)).toBe(true);
    expect(reports.find((r) => r.pid === server.proc.pid)!.memory.bytesRead).toBeGreaterThan(16 << 20);
  }, 180_000);

  test("control: the same search finds the agent's current keys in the agent's own memory", () => {
    collectAgentKeys();
    const state = join(dir, "a-state");
    // With SVIDs of TTL_S seconds backdated by 10 s, the agent renews each about once a second and
    // drops the key it replaced, which a collection may free and overwrite: a key read from its file
    // and renewed while the scan runs (half a second or more on a loaded machine) can be gone before
    // the scan reaches it. The agent is stopped while its files are read and its memory scanned, so
    // the keys searched for are the ones it holds during the whole scan (it writes a new key's file
    // before it lets go of the old key).
    process.kill(agent.proc.pid, "SIGSTOP");
    let scan: ReturnType<typeof scanPids>;
    try {
      const current = ["agent/node.key", ...entryIds.map((e) => `agent/svids/${e}.key`)].flatMap((f) => keyNeedles(`current ${f}`, readFileSync(join(state, f), "utf8")));
      scan = scanPids([agent.proc.pid], current);
    } finally {
      process.kill(agent.proc.pid, "SIGCONT");
    }
    const { reports, gone } = scan;
    expect(gone).toEqual([]);
    const hits = describeHits(reports);
    for (const f of ["agent/node.key", ...entryIds.map((e) => `agent/svids/${e}.key`)]) {
      expect(hits.some((h) => h.includes(`current ${f}:`) && / in memory /.test(h))).toBe(true);
    }
  }, 120_000);
});
