// Workload attestation of real processes (issue 4, "Done when"): another uid, a binary replaced
// on disk, a binary rewritten in place with its mtime restored, pid reuse, container-shaped and
// tidegate workload cgroups made under the real cgroup2 tree. Needs root: without it these tests
// are skipped with a message, except under CI=true, where they fail.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Attestation, AttestError, CgroupAttestor, nodeProcFs, TidegateAttestor, UnixAttestor, workloadCgroupPath } from "../../src/attest/index.ts";
import { probeHost } from "../../src/runtime/host.ts";
import { podCgroup, startKubelet, webPod, WEB_APP, WEB_UID } from "../../src/attest/test-kubelet.ts";
import { tidegate } from "../helpers/binary.ts";
import { TaskPrinter } from "../../src/bpf/task-print.ts";
import { rejectionCode } from "../shim.ts";

const isRoot = process.getuid?.() === 0;
const CI = process.env.CI === "true";
const mount = probeHost().cgroup2;
const rootTest = (name: string, fn: () => Promise<void>, timeout = 20_000) => {
  if (isRoot && mount !== null) return test(name, fn, timeout);
  if (CI) return test(name, () => { throw new Error(`needs root and a cgroup2 mount (root: ${isRoot}, cgroup2: ${mount})`); });
  return test.skip(`${name} (skipped: needs root and cgroup2)`, () => {});
};
if (!isRoot && !CI) console.log("attest e2e: not root, the real-process tests are skipped");

const dir = mkdtempSync(join(tmpdir(), "tidegate-attest-"));
const rand = Math.random().toString(16).slice(2, 10);
const cgroupName = `tidegate-test-${rand}`;
const children: Subprocess[] = [];

function spawnSleep(argv: string[] = ["sleep", "60"]): Subprocess {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  children.push(p);
  return p;
}

/** Waits until pid runs `exe` (after setpriv's exec, for instance). */
async function execd(pid: number, exe: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    try {
      if (statSync(`/proc/${pid}/exe`).ino === statSync(exe).ino) return;
    } catch {
      // not yet
    }
    await Bun.sleep(5);
  }
  throw new Error(`pid ${pid} never ran ${exe}`);
}

function sha256(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

/** A copy of /usr/bin/sleep differing in one byte of its section header table (never loaded). */
function sleepVariant(path: string, v: number): void {
  const bytes = new Uint8Array(readFileSync("/usr/bin/sleep"));
  const shoff = Number(new DataView(bytes.buffer).getBigUint64(0x28, true));
  bytes[shoff + 1] = v;
  writeFileSync(path, bytes, { mode: 0o755 });
}

/** tg_task_print, opened before the tests when root: the agent's way to read the fingerprint. */
let printer: TaskPrinter | null = null;

/** With `kernel`, the fingerprint is read by tg_task_print (as the agent does), else from /proc. */
function unixOnly(kernel = false): { at: Attestation; unix: UnixAttestor } {
  const unix = new UnixAttestor(nodeProcFs);
  const kernelPrint = (pid: number) => {
    const print = printer!.print(pid);
    if (print !== null) kernelAnswers++;
    return print;
  };
  return { at: new Attestation(nodeProcFs, [unix], kernel ? { kernelPrint } : {}), unix };
}

/** Prints tg_task_print answered (not null: /proc read instead) since the test began. */
let kernelAnswers = 0;

/** Each fingerprint test runs twice: /proc, and the kernel's print. */
const SOURCES: readonly (readonly [string, boolean])[] = [["", false], [" (fingerprint from tg_task_print)", true]];

/** A fingerprint test; with `kernel`, it also fails if tg_task_print never answered (all of it read /proc). */
const sourceTest = (name: string, kernel: boolean, fn: () => Promise<void>) =>
  rootTest(name, async () => {
    kernelAnswers = 0;
    await fn();
    if (kernel) expect(kernelAnswers).toBeGreaterThan(0);
  });

const codeOf = (p: Promise<unknown>) => rejectionCode(p, AttestError);

/** Removes cgroups named tidegate-test-* under the mount: processes moved to the root, dirs deepest first. */
function removeCgroupTree(path: string): void {
  for (const name of readdirSync(path, { withFileTypes: true })) if (name.isDirectory()) removeCgroupTree(join(path, name.name));
  for (const pid of readFileSync(join(path, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
    try {
      writeFileSync(join(mount!, "cgroup.procs"), pid);
    } catch {
      // exited meanwhile
    }
  }
  rmdirSync(path);
}

beforeAll(async () => {
  if (!isRoot || mount === null) return;
  printer = await TaskPrinter.open();
  for (const name of readdirSync(mount)) if (name.startsWith("tidegate-test-")) removeCgroupTree(join(mount, name));
});

afterAll(async () => {
  printer?.close();
  for (const c of children) c.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  if (isRoot && mount !== null && existsSync(join(mount, cgroupName))) removeCgroupTree(join(mount, cgroupName));
  rmSync(dir, { recursive: true, force: true });
});

describe("attest real processes", () => {
  for (const [how, kernel] of SOURCES) {
    sourceTest(`a child running as another uid is attested as that uid, user, gid and group${how}`, kernel, async () => {
      const child = spawnSleep(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"]);
      await execd(child.pid, "/usr/bin/sleep");
      const { selectors } = await unixOnly(kernel).at.attest(child.pid);
      expect(selectors).toContain("unix:uid:65534");
      expect(selectors).toContain("unix:user:nobody");
      expect(selectors).toContain("unix:gid:65534");
      expect(selectors).toContain("unix:group:nogroup");
      expect(selectors.some((s) => s.startsWith("unix:supplementary_gid:"))).toBe(false);
      expect(selectors).toContain("unix:path:/usr/bin/sleep");
      expect(selectors).toContain(`unix:sha256:${sha256("/usr/bin/sleep")}`);
    });

    sourceTest(`a binary replaced on disk: a new process gets the new hash, the old keeps the old${how}`, kernel, async () => {
      const app = join(dir, kernel ? "replaced-k" : "replaced");
      sleepVariant(app, 1);
      const oldHash = sha256(app);
      const old = spawnSleep([app, "60"]);
      await execd(old.pid, app);
      const { at } = unixOnly(kernel);
      expect((await at.attest(old.pid)).selectors).toContain(`unix:sha256:${oldHash}`);
      sleepVariant(`${app}.new`, 2);
      renameSync(`${app}.new`, app);
      const newHash = sha256(app);
      expect(newHash).not.toBe(oldHash);
      const fresh = spawnSleep([app, "60"]);
      await execd(fresh.pid, app);
      expect((await at.attest(fresh.pid)).selectors).toContain(`unix:sha256:${newHash}`);
      // the old process, attested afresh (no cache), still hashes the file it runs, now deleted
      const again = (await unixOnly(kernel).at.attest(old.pid)).selectors;
      expect(again).toContain(`unix:sha256:${oldHash}`);
      expect(again).toContain(`unix:path:${app}`);
    });

    sourceTest(`a binary rewritten in place with its mtime restored by touch -d is hashed anew${how}`, kernel, async () => {
      const app = join(dir, kernel ? "inplace-k" : "inplace");
      sleepVariant(app, 3);
      const st0 = statSync(app, { bigint: true });
      const { at, unix } = unixOnly(kernel);
      const first = spawnSleep([app, "60"]);
      await execd(first.pid, app);
      expect((await at.attest(first.pid)).selectors).toContain(`unix:sha256:${sha256(app)}`);
      const hashedBefore = unix.hashes.hashed;
      first.kill("SIGKILL");
      await first.exited;
      // same inode, same size, the old mtime put back
      const bytes = new Uint8Array(readFileSync(app));
      const shoff = Number(new DataView(bytes.buffer).getBigUint64(0x28, true));
      bytes[shoff + 1] = 4;
      writeFileSync(app, bytes);
      const stamp = `@${st0.mtimeNs / 1_000_000_000n}.${String(st0.mtimeNs % 1_000_000_000n).padStart(9, "0")}`;
      expect(Bun.spawnSync(["touch", "-d", stamp, app]).exitCode).toBe(0);
      const st1 = statSync(app, { bigint: true });
      expect([st1.ino, st1.size, st1.mtimeNs]).toEqual([st0.ino, st0.size, st0.mtimeNs]);
      expect(st1.ctimeNs).not.toBe(st0.ctimeNs);
      const second = spawnSleep([app, "60"]);
      await execd(second.pid, app);
      expect((await at.attest(second.pid)).selectors).toContain(`unix:sha256:${sha256(app)}`);
      expect(unix.hashes.hashed).toBe(hashedBefore + 1);
    });

    sourceTest(`a second attestation of the same process is a cache hit; another process of the same binary is not hashed again${how}`, kernel, async () => {
      const { at, unix } = unixOnly(kernel);
      const a = spawnSleep();
      const b = spawnSleep();
      await execd(a.pid, "/usr/bin/sleep");
      await execd(b.pid, "/usr/bin/sleep");
      await at.attest(a.pid);
      const hashed = unix.hashes.hashed;
      expect((await at.attest(a.pid)).cached).toBe(true);
      expect((await at.attest(b.pid)).cached).toBe(false);
      expect(unix.hashes.hashed).toBe(hashed);
    });

    sourceTest(`pid reuse: a stale start time is refused, an exited process is refused, a reused pid is refused${how}`, kernel, async () => {
      const { at } = unixOnly(kernel);
      const p = spawnSleep();
      await execd(p.pid, "/usr/bin/sleep");
      const start = await at.startTime(p.pid);
      expect((await at.attest(p.pid, start)).startTime).toBe(start);
      expect(await codeOf(at.attest(p.pid, start - 1))).toBe("attest_process_changed");
      p.kill("SIGKILL");
      await p.exited;
      expect(await codeOf(at.attest(p.pid, start))).toBe("attest_no_process");
      // Make the kernel hand the same pid to a new process (ns_last_pid), then attest the old pair.
      // The start time counts clock ticks (10 ms): a process reusing the pid within the same tick
      // has the same start time (docs/attestation.md), so a reuse in the same tick is retried.
      let reused: Subprocess | undefined;
      const deadline = Date.now() + 5000;
      while (reused === undefined && Date.now() < deadline) {
        writeFileSync("/proc/sys/kernel/ns_last_pid", String(p.pid - 1));
        const c = spawnSleep();
        if (c.pid === p.pid && (await at.startTime(c.pid)) !== start) reused = c;
        else {
          c.kill("SIGKILL");
          await c.exited;
          await Bun.sleep(2);
        }
      }
      if (reused === undefined) throw new Error(`could not get pid ${p.pid} again`);
      await execd(reused.pid, "/usr/bin/sleep");
      expect(await codeOf(at.attest(p.pid, start))).toBe("attest_process_changed");
      expect((await at.attest(reused.pid)).startTime).not.toBe(start);
    });
  }

  rootTest("a process in a container-shaped cgroup under the cgroup2 tree gets container:id and k8s:pod-uid", async () => {
    const id = Array.from({ length: 64 }, () => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join("");
    const uid = "2c9b4a6e-1f3d-4e5a-9b7c-0d1e2f3a4b5c";
    const docker = `/${cgroupName}/system.slice/docker-${id}.scope`;
    const pod = `/${cgroupName}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid.replaceAll("-", "_")}.slice`;
    const cri = `${pod}/cri-containerd-${id}.scope`;
    for (const p of [docker, cri]) mkdirSync(join(mount!, p), { recursive: true });
    const at = new Attestation(nodeProcFs, [new CgroupAttestor(nodeProcFs, mount!)], { cacheTtlMs: 0 });
    const child = spawnSleep();
    await execd(child.pid, "/usr/bin/sleep");
    writeFileSync(join(mount!, docker, "cgroup.procs"), String(child.pid));
    expect((await at.attest(child.pid)).selectors).toEqual([`cgroup:path:${docker}`, `container:id:${id}`]);
    writeFileSync(join(mount!, cri, "cgroup.procs"), String(child.pid));
    expect((await at.attest(child.pid)).selectors).toEqual([`cgroup:path:${cri}`, `container:id:${id}`, `k8s:pod-uid:${uid}`]);
    // a cgroup a user owns (rootless runtime, or forged) names no container
    chownSync(join(mount!, cri), 65534, 65534);
    expect((await at.attest(child.pid)).selectors).toEqual([`cgroup:path:${cri}`, `k8s:pod-uid:${uid}`]);
  });

  rootTest("tidegate attest --kubelet: a process in a pod's container gets the pod's k8s selectors", async () => {
    const kubelet = await startKubelet({ token: "kubelet-e2e-token", pods: [webPod()] });
    try {
      const cri = `/${cgroupName}${podCgroup(WEB_UID, WEB_APP)}`;
      mkdirSync(join(mount!, cri), { recursive: true });
      const child = spawnSleep();
      await execd(child.pid, "/usr/bin/sleep");
      writeFileSync(join(mount!, cri, "cgroup.procs"), String(child.pid));
      writeFileSync(join(dir, "kubelet-token"), kubelet.token, { mode: 0o600 });
      writeFileSync(join(dir, "kubelet-ca.pem"), kubelet.caPem);
      const args = ["attest", "--pid", String(child.pid), "--json", "--run-dir", join(dir, "no-agent")];
      const kube = ["--kubelet", "--kubelet-url", kubelet.url, "--kubelet-token-file", join(dir, "kubelet-token"), "--kubelet-ca-file", join(dir, "kubelet-ca.pem")];
      const r = await tidegate([...args, ...kube]);
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      const selectors: string[] = JSON.parse(r.stdout).selectors;
      for (const s of ["k8s:ns:payments", "k8s:sa:web", "k8s:pod-label:app:web", "k8s:pod-label:tier:frontend", `k8s:pod-uid:${WEB_UID}`, `container:id:${WEB_APP}`]) {
        expect(selectors).toContain(s);
      }
      expect(kubelet.auths.at(-1)).toBe(`Bearer ${kubelet.token}`);
      // Without --kubelet there are no k8s selectors beyond the pod UID the cgroup path names.
      const plain = JSON.parse((await tidegate(args)).stdout).selectors as string[];
      expect(plain.filter((s) => s.startsWith("k8s:"))).toEqual([`k8s:pod-uid:${WEB_UID}`]);
      // A kubelet that refuses the token fails the attestation (fail closed), and the token is not printed.
      kubelet.status = 401;
      const refused = await tidegate([...args, ...kube]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("[attest_kubelet_unavailable]");
      expect(refused.stdout + refused.stderr).not.toContain(kubelet.token);
    } finally {
      await kubelet.close();
    }
  }, 30_000);

  rootTest("a process in the agent's workload cgroup gets tidegate:workload:NAME; a user-owned one is refused", async () => {
    const web = workloadCgroupPath(cgroupName, "web");
    mkdirSync(join(mount!, web), { recursive: true });
    const at = new Attestation(nodeProcFs, [new TidegateAttestor(nodeProcFs, mount!, cgroupName)], { cacheTtlMs: 0 });
    const child = spawnSleep();
    await execd(child.pid, "/usr/bin/sleep");
    expect((await at.attest(child.pid)).selectors).toEqual([]);
    writeFileSync(join(mount!, web, "cgroup.procs"), String(child.pid));
    expect((await at.attest(child.pid)).selectors).toEqual(["tidegate:workload:web"]);
    chownSync(join(mount!, web), 65534, 65534);
    expect(await codeOf(at.attest(child.pid))).toBe("attest_cgroup_untrusted");
    chownSync(join(mount!, web), 0, 0);
  });
});

describe("workloadCgroupPath", () => {
  test("the layout, and names that are no directory name are refused (attest_bad_workload)", () => {
    expect(workloadCgroupPath("tidegate", "web-1.a_b")).toBe("/tidegate/workloads/web-1.a_b");
    for (const bad of ["", ".", "..", "a/b", "-x", "x".repeat(64), "cgroup procs", "é"]) {
      let code = "no error";
      try {
        workloadCgroupPath("tidegate", bad);
      } catch (e) {
        code = e instanceof AttestError ? e.code : String(e);
      }
      expect(code).toBe("attest_bad_workload");
    }
  });
});
