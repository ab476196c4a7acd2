// Enforcement without a kernel (a recording fake capture): workload identities from entries, what
// the maps get on reload and on entry changes, nothing touched before the first sync, a rejected
// reload keeping the maps, and who a redirected caller is.
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Enforcement, type KernelCapture } from "./enforcement.ts";
import { PolicyHolder } from "../policy/holder.ts";
import { parseIp } from "../policy/address.ts";
import { decideConnection, identifyCaller, type EgressDeps } from "../proxy/egress-listener.ts";
import { createLogger } from "../runtime/log.ts";
import { AttestError } from "../attest/errors.ts";
import type { LpmEntry } from "../bpf/lpm-entries.ts";
import type { Entry } from "./wire.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-enforcement-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, "tidegate.yaml");
const POLICY = `trust_domain: example.org
egress:
  - { name: no-meta, from: spiffe://example.org/w1, to: { cidr: 10.9.0.0/16, port: any }, action: deny }
  - { name: web, from: spiffe://example.org/w1, to: { cidr: 10.1.0.0/16, port: 80 }, action: passthrough }
`;

const entry = (id: string, spiffe: string, ...selectors: string[]): Entry =>
  ({ id, spiffe_id: spiffe, parent_id: "spiffe://example.org/tidegate/agent/n1", selectors, ttl_seconds: 3600, dns_names: [], revision: 1 }) as Entry;

function setup(entries: Entry[] | null, cgroups = new Map([["w1", 101n]])) {
  const synced = new Map<bigint, readonly LpmEntry[]>();
  const removed: bigint[] = [];
  const lines: string[] = [];
  const audit = memoryAudit();
  const capture: KernelCapture = {
    syncCgroup: (id, e) => void synced.set(id, e),
    removeCgroup: (id) => void removed.push(id),
    lookupPeer: () => null,
  };
  const state = { entries, selectors: ["tidegate:workload:w1"] as string[], attestError: null as Error | null };
  const holder = new PolicyHolder();
  const enforcement = new Enforcement({
    configPath: config,
    holder,
    capture,
    cgroups: { workloads: () => cgroups },
    entries: () => state.entries,
    attest: async () => {
      if (state.attestError !== null) throw state.attestError;
      return state.selectors;
    },
    logger: createLogger({ write: (l) => void lines.push(l) }),
    audit,
  });
  return { enforcement, holder, synced, removed, lines, state, cgroups };
}

const rulesOf = (entries: readonly LpmEntry[] | undefined) => (entries ?? []).map((e) => `${e.cidr.text}:${e.rules.map((r) => `${r.action}/${r.ruleId}`).join(",")}`);

describe("enforcement", () => {
  test("a workload's identity is the one entry with its tidegate:workload selector", () => {
    const { enforcement, state } = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1", "unix:uid:65534")]);
    expect(enforcement.identityOf("w1").id?.toString()).toBe("spiffe://example.org/w1");
    expect(enforcement.identityOf("w2")).toEqual({ id: null, why: "no registration entry has the selector tidegate:workload:w2" });
    state.entries = [entry("e1", "spiffe://example.org/a", "tidegate:workload:w1"), entry("e2", "spiffe://example.org/b", "tidegate:workload:w1")];
    expect(enforcement.identityOf("w1").id).toBeNull();
    state.entries = null;
    expect(enforcement.identityOf("w1").id).toBeNull();
  });

  test("a good load writes each workload's share; a rejected reload keeps maps and policy", () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    expect(t.enforcement.reload()).toBe(true);
    expect(rulesOf(t.synced.get(101n))).toEqual(["0.0.0.0/0:", "10.9.0.0/16:1/0", "::/0:"]);
    writeFileSync(config, POLICY.replace("action: deny", "action: dney"));
    t.synced.clear();
    expect(t.enforcement.reload()).toBe(false);
    expect(t.synced.size).toBe(0);
    expect(t.holder.policy?.egress[0]?.action).toBe("deny");
    expect(t.lines.some((l) => l.includes('"policy_rejected"') && l.includes("egress[0].action"))).toBe(true);
  });

  test("before the first sync nothing is written; a workload without identity gets only the /0 entries", () => {
    writeFileSync(config, POLICY);
    const t = setup(null);
    t.enforcement.reload();
    expect(t.synced.size).toBe(0);
    t.state.entries = [];
    t.enforcement.resync();
    expect(rulesOf(t.synced.get(101n))).toEqual(["0.0.0.0/0:", "::/0:"]);
    expect(t.lines.some((l) => l.includes('"workload_without_identity"'))).toBe(true);
  });

  test("an unchanged resync writes nothing; a cgroup that went away is removed from the maps", () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1")]);
    t.enforcement.reload();
    t.synced.clear();
    t.enforcement.resync();
    expect(t.synced.size).toBe(0);
    t.cgroups.delete("w1");
    t.enforcement.resync();
    expect(t.removed).toEqual([101n]);
  });

  test("the listener's verdicts: no record, unknown cgroup, identity mismatch, then the policy's decision", async () => {
    writeFileSync(config, POLICY);
    const t = setup([entry("e1", "spiffe://example.org/w1", "tidegate:workload:w1"), entry("e2", "spiffe://example.org/other", "unix:uid:7")]);
    t.enforcement.reload();
    const record = { address: parseIp("10.1.2.3"), port: 80, proto: "tcp" as const, pid: 42, tgid: 42, uid: 65534, gid: 65534, cgroupId: 101n };
    const deps = (r: typeof record | null): EgressDeps => ({
      lookupRecord: () => r,
      identify: (x) => t.enforcement.identify(x),
      engine: () => t.holder.engine,
      names: () => ({ resolve: async () => [] }),
      logger: createLogger({ write: () => {} }),
      audit: memoryAudit(),
    });
    const peer = { address: parseIp("127.0.0.1"), port: 40000 };
    const local = { address: parseIp("127.0.0.1"), port: 1001 };
    const who = async (r: typeof record | null) => identifyCaller(peer, local, deps(r));
    expect((await who(null)).fields).toMatchObject({ outcome: "refused", reason: "no_record" });
    expect((await who({ ...record, cgroupId: 999n })).fields).toMatchObject({ reason: "unknown_cgroup" });
    t.state.selectors = ["unix:uid:7"];
    expect((await who(record)).fields).toMatchObject({ reason: "identity_mismatch", workload: "w1" });
    t.state.selectors = ["tidegate:workload:w1"];
    t.state.attestError = new AttestError("attest_no_process", "attest: no process with pid 42");
    expect((await who(record)).fields).toMatchObject({ outcome: "refused", reason: "caller_exited" });
    t.state.attestError = new AttestError("attest_bad_proc", "attest: /proc/42/stat has an unexpected shape");
    expect((await who(record)).fields).toMatchObject({ outcome: "refused", reason: "attestation_failed" });
    t.state.attestError = null;
    const caller = await who(record);
    if ("refused" in caller) throw new Error("refused");
    expect(caller.fields).toMatchObject({ spiffe_id: "spiffe://example.org/w1", dst: "10.1.2.3", dst_port: 80, pid: 42, uid: 65534 });
    const ok = await decideConnection(caller, null, deps(record));
    expect(ok.fields).toMatchObject({ decision: "allow", rule: "web", action: "passthrough" });
    expect(ok.upstream?.address.text).toBe("10.1.2.3");
    const denied = await decideConnection({ ...caller, record: { ...record, port: 81 } }, null, deps(record));
    expect(denied.fields).toMatchObject({ decision: "deny", rule: null, outcome: "refused", reason: "no_rule" });
    expect(denied.upstream).toBeNull();
  });
});
