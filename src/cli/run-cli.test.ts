// `tidegate run` as root against a stand-in agent.sock (a unit test of the CLI's side of POST
// /v1/run): what it says when the workload has no user, in this process through main().
import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "./main.ts";
import { agentRefusal } from "./run.ts";
import { serveUnix } from "../runtime/unix-http.ts";
import { probeHost } from "../runtime/host.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function runAgainst(grant: Record<string, unknown>, args: string[], command: string[] = ["true"]): Promise<{ code: number; err: string; released: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-uxcli-run-"));
  dirs.push(dir);
  const released: string[] = [];
  const agent = serveUnix(join(dir, "run", "agent.sock"), async (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/v1/run") return Response.json({ cgroup_dir: join(dir, "cg"), spiffe_id: null, no_identity: null, ca_bundle: null, ...grant });
    if (path === "/v1/run/release") {
      released.push(((await req.json()) as { workload: string }).workload);
      return Response.json({ removed: true });
    }
    return Response.json({ error: { code: "not_found", message: "no" } }, { status: 404 });
  });
  let err = "";
  try {
    const code = await main([...args, "--instance", "uxcli", "--run-dir", join(dir, "run"), "--", ...command], { out: () => undefined, err: (t) => void (err += t) }, {});
    return { code, err, released };
  } finally {
    await agent.stop();
  }
}

describe.skipIf(process.getuid?.() !== 0)("tidegate run as root, without --user", () => {
  test("a workload the config does not have: says so, lists the config's workloads, and that --user runs it anyway", async () => {
    const r = await runAgainst({ user: null, workloads: ["w1", "web"] }, ["run", "--workload", "nope"]);
    expect(r.code).toBe(2);
    expect(r.err).toStartWith(`tidegate run: workload "nope" is not in the agent's config (workloads: it has: w1, web); give --user USER to run it anyway\n`);
    expect(r.released).toEqual(["nope"]);
  });

  test("a misspelt workload gets a did-you-mean", async () => {
    const r = await runAgainst({ user: null, workloads: ["billing", "web"] }, ["run", "--workload", "biling"]);
    expect(r.err).toContain("did you mean billing?");
  });

  test("a workload in the config without user: still says to give --user", async () => {
    const r = await runAgainst({ user: null, workloads: ["w1"] }, ["run", "--workload", "w1"]);
    expect(r.code).toBe(2);
    expect(r.err).toStartWith(`tidegate run: workload "w1" names no user: in the config; give --user USER\n`);
  });
});

const cgroup2 = probeHost().cgroup2;

describe.skipIf(process.getuid?.() !== 0 || cgroup2 === null)("tidegate run as root: the working directory", () => {
  test("is entered as the workload's user: a folder it reaches only through root's working directory is refused, not inherited", async () => {
    // root's working directory is a world-readable folder inside a root-only one: the workload's
    // user cannot reach it by path, and must not be handed it as its working directory either.
    const outer = mkdtempSync(join(tmpdir(), "tidegate-uxcli-cwd-"));
    dirs.push(outer);
    chmodSync(outer, 0o700);
    const inner = join(outer, "pub");
    mkdirSync(inner, { mode: 0o755 });
    writeFileSync(join(inner, "notes"), "made-up private notes\n", { mode: 0o644 });
    const cg = join(cgroup2!, `tidegate-test-runcwd-${process.pid}`);
    mkdirSync(cg);
    const was = process.cwd();
    process.chdir(inner);
    try {
      const r = await runAgainst({ cgroup_dir: cg, user: "nobody", workloads: ["w1"] }, ["run", "--workload", "w1"], ["cat", "notes"]);
      expect(r.code).toBe(126); // the launcher's own refusal (run_bad_cwd, on the inherited stderr); cat ran: 0
      expect(r.released).toEqual(["w1"]);
    } finally {
      process.chdir(was);
      for (let i = 0; ; i++) {
        try {
          rmdirSync(cg);
          break;
        } catch (e) {
          if (i > 200) throw e;
          await Bun.sleep(10);
        }
      }
    }
  }, 30_000);
});

describe("agentRefusal", () => {
  test("an agent older than the binary (it does not know the terminal field) is named, with how to mend it; other refusals as they are", () => {
    expect(agentRefusal({ code: "run_bad_request", message: 'run: bad request: unknown field "tty"' })).toBe(
      'run: the agent refused: bad request: unknown field "tty" (run_bad_request); the agent is older than this tidegate: restart it (tidegate down, then tidegate up; or the agent\'s service) so it runs the installed binary',
    );
    expect(agentRefusal({ code: "run_not_allowed", message: "run: nobody may not run w1" })).toBe("run: the agent refused: nobody may not run w1 (run_not_allowed)");
  });
});

