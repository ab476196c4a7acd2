// Who may run what through run.sock: a table over callers, workloads and --user, with the
// account files and the policy injected; and the working-directory check on real folders.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicy } from "../policy/load.ts";
import { callerGroups, decideRun, reachable, type DecisionInput } from "./run-decision.ts";
import type { RunRequest } from "./run-protocol.ts";

const files = {
  passwd: [
    "root:x:0:0::/root:/bin/sh",
    "www:x:33:33::/var/www:/bin/false",
    "alice:x:1000:1000::/home/alice:/bin/sh",
    "bob:x:1001:1001::/home/bob:/bin/sh",
    "carol:x:1002:1002::/home/carol:/bin/sh",
    "dave:x:1003:1003::/home/dave:/bin/sh",
    "eve:x:1004:900::/home/eve:/bin/sh",
    "svc:x:2000:2000::/:/bin/false",
  ].join("\n"),
  group: ["root:x:0:", "www:x:33:", "tidegate:x:900:alice,bob,carol", "devs:x:1500:carol,dave", "svc:x:2000:"].join("\n"),
};

const POLICY = `trust_domain: example.org
agent: { run_group: tidegate }
workloads:
  - { name: w1, id: spiffe://example.org/w1, user: www, run_by: { users: [alice, "1004"] } }
  - { name: w2, id: spiffe://example.org/w2, user: www, run_by: { groups: [devs] } }
  - { name: wroot, id: spiffe://example.org/wroot, user: root, run_by: { users: [alice] } }
  - { name: wnouser, id: spiffe://example.org/wnouser, run_by: { users: [alice] } }
  - { name: wbyuid, id: spiffe://example.org/wbyuid, user: svc, run_by: { users: ["1001"] } }
  - { name: wdave, id: spiffe://example.org/wdave, user: www, run_by: { users: [dave] } }
  - { name: wghost, id: spiffe://example.org/wghost, user: ghost, run_by: { users: [alice] } }
`;
const policy = loadPolicy(POLICY, "test.yaml");

const ROOT = { pid: 10, uid: 0, gid: 0 };
const ALICE = { pid: 11, uid: 1000, gid: 1000 };
const BOB = { pid: 12, uid: 1001, gid: 1001 };
const CAROL = { pid: 13, uid: 1002, gid: 1002 };
const DAVE = { pid: 14, uid: 1003, gid: 1003 };
const EVE = { pid: 15, uid: 1004, gid: 900 };

function req(workload: string, more: Partial<RunRequest> = {}): RunRequest {
  return { workload, user: null, allowRoot: false, command: ["id"], env: [], cwd: "/srv", ...more };
}

function decide(caller: DecisionInput["caller"], request: RunRequest, over: Partial<DecisionInput> = {}) {
  const d = decideRun({ caller, request, policy, files, cwdFor: (cwd) => cwd, ...over });
  return d.ok ? `ok uid=${d.target.uid} gid=${d.target.gid} groups=${d.target.groups.join(",")}${d.target.allowRoot ? " root" : ""}` : d.code;
}

describe("decideRun", () => {
  test("root, no --user, a workload the config does not have: says so, with the ones it has and the nearest", () => {
    const d = decideRun({ caller: ROOT, request: req("wdav"), policy, files, cwdFor: (cwd) => cwd });
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.code).toBe("run_workload_unknown");
    expect(d.message).toBe('run: workload "wdav" is not in the agent\'s config (workloads: it has: w1, w2, wroot, wnouser, wbyuid, wdave, wghost); did you mean wdave?; give --user USER to run it anyway');
    const known = decideRun({ caller: ROOT, request: req("wnouser"), policy, files, cwdFor: (cwd) => cwd });
    expect(known.ok ? "" : known.message).toBe('run: workload "wnouser" names no user: in the config; give --user USER');
  });


  const table: [string, DecisionInput["caller"], RunRequest, string, Partial<DecisionInput>?][] = [
    ["root: the workload's user", ROOT, req("w1"), "ok uid=33 gid=33 groups=33"],
    ["root: any user, any workload", ROOT, req("elsewhere", { user: "bob" }), "ok uid=1001 gid=1001 groups=1001,900"],
    ["root: a numeric user without a passwd line", ROOT, req("w1", { user: "4242" }), "ok uid=4242 gid=4242 groups=4242"],
    ["root: no user anywhere", ROOT, req("wnouser"), "run_workload_without_user"],
    ["root: an unknown user", ROOT, req("w1", { user: "nosuch" }), "run_no_such_user"],
    ["root: root target without --allow-root", ROOT, req("w1", { user: "root" }), "run_root_refused"],
    ["root: root target with --allow-root", ROOT, req("wroot", { allowRoot: true }), "ok uid=0 gid=0 groups=0 root"],
    ["root: no policy loaded", ROOT, req("w1", { user: "www" }), "ok uid=33 gid=33 groups=33", { policy: null }],
    ["member, named by user", ALICE, req("w1"), "ok uid=33 gid=33 groups=33"],
    ["member by primary gid only, named by uid", EVE, req("w1"), "ok uid=33 gid=33 groups=33"],
    ["member, not named", BOB, req("w1"), "run_not_in_run_by"],
    ["member, named by a group of its", CAROL, req("w2"), "ok uid=33 gid=33 groups=33"],
    ["member, not in the named group", ALICE, req("w2"), "run_not_in_run_by"],
    ["member, named by uid", BOB, req("wbyuid"), "ok uid=2000 gid=2000 groups=2000"],
    ["not a member, named", DAVE, req("wdave"), "run_not_in_group"],
    ["not a member, in the named group", DAVE, req("w2"), "run_not_in_group"],
    ["no such run group", ALICE, req("w1"), "run_not_in_group", { policy: { ...policy, agent: { ...policy.agent, runGroup: "nosuch" } } }],
    ["member, no policy loaded", ALICE, req("w1"), "run_no_policy", { policy: null }],
    ["member, unknown workload", ALICE, req("nosuch"), "run_workload_unknown"],
    ["member, the workload's user again by name", ALICE, req("w1", { user: "www" }), "ok uid=33 gid=33 groups=33"],
    ["member, the workload's user again by uid", ALICE, req("w1", { user: "33" }), "ok uid=33 gid=33 groups=33"],
    ["member, another user", ALICE, req("w1", { user: "bob" }), "run_user_not_allowed"],
    ["member, --user root", ALICE, req("w1", { user: "root" }), "run_user_not_allowed"],
    ["member, --user 0", ALICE, req("w1", { user: "0" }), "run_user_not_allowed"],
    ["member, --allow-root", ALICE, req("w1", { allowRoot: true }), "run_root_refused"],
    ["member, a root workload", ALICE, req("wroot"), "run_root_refused"],
    ["member, a root workload with --allow-root", ALICE, req("wroot", { allowRoot: true }), "run_root_refused"],
    ["member, a workload without user:", ALICE, req("wnouser"), "run_workload_without_user"],
    ["member, a workload whose user does not exist", ALICE, req("wghost"), "run_no_such_user"],
    ["member, a cwd the user cannot reach", ALICE, req("w1"), "run_cwd_unreachable", { cwdFor: () => null }],
  ];
  for (const [name, caller, request, want, over] of table) {
    test(name, () => expect(decide(caller, request, over)).toBe(want));
  }

  test("refusals say why, naming the workload, the caller and the setting", () => {
    const d = decideRun({ caller: BOB, request: req("w1"), policy, files, cwdFor: (c) => c });
    expect(d).toEqual({ ok: false, code: "run_not_in_run_by", message: `run: workload "w1"'s run_by does not name uid 1001 (users or one of its groups)` });
    const g = decideRun({ caller: DAVE, request: req("wdave"), policy, files });
    expect(!g.ok && g.message).toBe(`run: uid 1003 is not a member of the agent's run group "tidegate"; only root and its members may run workloads`);
  });

  test("the target's cwd is the real path the check was made on", () => {
    const d = decideRun({ caller: ALICE, request: req("w1", { cwd: "/srv/./x" }), policy, files, cwdFor: () => "/srv/x" });
    expect(d.ok && d.target.cwd).toBe("/srv/x");
  });

  test("a caller's groups: its gid, then what /etc/group gives its user", () => {
    expect(callerGroups(files, CAROL)).toEqual([1002, 900, 1500]);
    expect(callerGroups(files, { pid: 1, uid: 5555, gid: 77 })).toEqual([77]);
  });
});

describe("reachable", () => {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-test-run-cwd-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const nobody = { uid: 65534, gid: 65534, groups: [65534] };
  const isRoot = process.getuid?.() === 0;

  test.skipIf(!isRoot)("every folder on the way must be searchable by the user (owner, group or other bits)", () => {
    chmodSync(dir, 0o755);
    mkdirSync(join(dir, "open/inner"), { recursive: true });
    mkdirSync(join(dir, "closed/inner"), { recursive: true, mode: 0o755 });
    chmodSync(join(dir, "closed"), 0o700);
    mkdirSync(join(dir, "group/inner"), { recursive: true });
    chmodSync(join(dir, "group"), 0o710);
    writeFileSync(join(dir, "file"), "");
    symlinkSync(join(dir, "closed/inner"), join(dir, "link"));
    expect(reachable(join(dir, "open/inner"), nobody)).toBe(join(dir, "open/inner"));
    expect(reachable(join(dir, "closed/inner"), nobody)).toBeNull();
    expect(reachable(join(dir, "link"), nobody)).toBeNull(); // the real path is what counts
    expect(reachable(join(dir, "group/inner"), nobody)).toBeNull();
    expect(reachable(join(dir, "group/inner"), { ...nobody, groups: [65534, 0] })).toBe(join(dir, "group/inner"));
    expect(reachable(join(dir, "file"), nobody)).toBeNull();
    expect(reachable(join(dir, "absent"), nobody)).toBeNull();
    expect(reachable(join(dir, "closed/inner"), { uid: 0, gid: 0, groups: [0] })).toBe(join(dir, "closed/inner")); // owner bits
  });

  test("injected stat: a folder with o-x on the way refuses", () => {
    const stat = (p: string) => ({ mode: 0o040000 | (p === "/a" ? 0o750 : 0o755), uid: 0, gid: 10 });
    expect(reachable("/a/b", nobody, stat, (p) => p)).toBeNull();
    expect(reachable("/a/b", { uid: 5, gid: 10, groups: [] }, stat, (p) => p)).toBe("/a/b");
    expect(reachable("/c/b", nobody, stat, (p) => p)).toBe("/c/b");
  });
});
