import { describe, expect, test } from "bun:test";
import { Attestation, type Fingerprint } from "./attestation.ts";
import type { ProcessRef, WorkloadAttestor } from "./attestor.ts";
import { AttestError } from "./errors.ts";
import { FakeProcFs } from "./fake-proc-fs.ts";
import { UnixAttestor } from "./unix.ts";
import { CgroupAttestor } from "./cgroup.ts";
import { TidegateAttestor } from "./tidegate.ts";
import { rejectionCode } from "../../test/shim.ts";

const codeOf = (p: Promise<unknown>) => rejectionCode(p, AttestError);

/** An attestor that runs a hook (the world changes mid-attestation) and returns fixed selectors. */
function probe(hook: (p: ProcessRef) => void = () => {}, out = ["test:k:v"]): WorkloadAttestor & { calls: number } {
  return {
    name: "test",
    calls: 0,
    async attest(p) {
      this.calls++;
      hook(p);
      return out;
    },
  };
}

describe("Attestation", () => {
  test("runs the attestors on the pid with its start time; duplicates removed", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 777, comm: "we(ird) (name" });
    const seen: ProcessRef[] = [];
    const at = new Attestation(fs, [probe((p) => seen.push(p), ["a:b:c", "a:b:c"]), probe(() => {}, ["d:e:f"])]);
    const got = await at.attest(5);
    expect(got).toEqual({ pid: 5, startTime: 777, selectors: ["a:b:c", "d:e:f"], cached: false });
    expect(seen).toEqual([{ pid: 5, startTime: 777 }]);
  });

  test("a /proc/PID/stat the byte parser does not take is parsed as text: a tab, a 5,000-byte comm; a bad field 22 is attest_bad_proc", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5 }).addProcess({ pid: 6 }).addProcess({ pid: 7 });
    const fields = (start: string) => `S 1 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 ${start} 1000 100\n`;
    fs.set("/proc/5/stat", { text: `5 (a) \t${fields("31337")}` });
    fs.set("/proc/6/stat", { text: `6 (${"x".repeat(5000)}) ${fields("4242")}` });
    fs.set("/proc/7/stat", { text: `7 (a) ${fields("12x")}` });
    const at = new Attestation(fs, [probe()]);
    expect((await at.attest(5)).startTime).toBe(31337);
    expect((await at.attest(6)).startTime).toBe(4242);
    expect(await codeOf(at.attest(7))).toBe("attest_bad_proc");
  });

  test("a start time other than the captured one: attest_process_changed (pid reused)", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 777 });
    const p = probe();
    expect(await codeOf(new Attestation(fs, [p]).attest(5, 776))).toBe("attest_process_changed");
    expect(p.calls).toBe(0);
  });

  test("no such process: attest_no_process", async () => {
    expect(await codeOf(new Attestation(new FakeProcFs(), [probe()]).attest(5))).toBe("attest_no_process");
  });

  test("not a pid: attest_bad_pid", async () => {
    const at = new Attestation(new FakeProcFs(), [probe()]);
    for (const pid of [0, -1, 1.5, Number.NaN, 2 ** 40]) expect(await codeOf(at.attest(pid))).toBe("attest_bad_pid");
  });

  test("the process exits during attestation: attest_no_process", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5 });
    expect(await codeOf(new Attestation(fs, [probe(() => fs.removeProcess(5))]).attest(5))).toBe("attest_no_process");
  });

  test("the pid is reused during attestation: attest_process_changed, no selectors returned", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 1 });
    const at = new Attestation(fs, [probe(() => fs.addProcess({ pid: 5, startTime: 2 }))]);
    expect(await codeOf(at.attest(5))).toBe("attest_process_changed");
  });

  test("an attestor fails because the process vanished: attest_no_process, not its error", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5 });
    fs.onHash = () => fs.removeProcess(5);
    expect(await codeOf(new Attestation(fs, [new UnixAttestor(fs)]).attest(5))).toBe("attest_no_process");
  });

  test("the process execs another file during attestation: attest_process_changed", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, exeStat: { ino: 1n } });
    const at = new Attestation(fs, [probe(() => fs.set("/proc/5/exe", { link: "/bin/sh", stat: { ino: 2n } }))]);
    expect(await codeOf(at.attest(5))).toBe("attest_process_changed");
  });

  test("a process that exited and is not reaped yet (a zombie: stat left, no executable): attest_no_process", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    fs.set("/proc/5/stat", { text: "5 (w) r k) Z 1 1 1 0 -1 4194348 0 0 0 0 0 0 0 0 20 0 1 0 10 0 0\n" });
    fs.nodes.delete("/proc/5/exe");
    const at = new Attestation(fs, [probe()]);
    expect(await codeOf(at.attest(5))).toBe("attest_no_process");
    expect(await codeOf(at.attest(5, 10))).toBe("attest_no_process");
  });

  test("a process without an executable (kernel thread): attest_exe_unreadable", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 2 });
    fs.nodes.delete("/proc/2/exe");
    expect(await codeOf(new Attestation(fs, [probe()]).attest(2))).toBe("attest_exe_unreadable");
  });

  test("an attestor's own failure fails the attestation (attest_failed, cause kept)", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5 });
    const boom: WorkloadAttestor = { name: "boom", attest: async () => { throw new Error("kaput"); } };
    expect(await codeOf(new Attestation(fs, [probe(), boom]).attest(5))).toBe("attest_failed");
  });

  describe("cache", () => {
    test("a second attestation of the same process is served from the cache", async () => {
      const fs = new FakeProcFs().addProcess({ pid: 5 });
      const p = probe();
      const at = new Attestation(fs, [p]);
      await at.attest(5);
      const again = await at.attest(5);
      expect(again.cached).toBe(true);
      expect(again.selectors).toEqual(["test:k:v"]);
      expect(p.calls).toBe(1);
    });

    const invalidations: [string, (fs: FakeProcFs) => void][] = [
      ["a new start time (pid reused)", (fs) => fs.addProcess({ pid: 5, startTime: 2000 })],
      ["a new executable inode (exec)", (fs) => fs.set("/proc/5/exe", { link: "/bin/x", stat: { ino: 99n } })],
      ["a new owner of /proc/PID (setuid)", (fs) => fs.set("/proc/5", { stat: { isDirectory: true, uid: 0, gid: 0 } })],
    ];
    for (const [name, change] of invalidations) {
      test(`is not used after ${name}`, async () => {
        const fs = new FakeProcFs().addProcess({ pid: 5 });
        const p = probe();
        const at = new Attestation(fs, [p]);
        await at.attest(5);
        change(fs);
        expect((await at.attest(5)).cached).toBe(false);
        expect(p.calls).toBe(2);
      });
    }

    test("expires after cacheTtlMs; forget() drops it; it is bounded", async () => {
      const fs = new FakeProcFs().addProcess({ pid: 5 }).addProcess({ pid: 6 }).addProcess({ pid: 7 });
      let now = 0;
      const p = probe();
      const at = new Attestation(fs, [p], { cacheTtlMs: 1000, cacheMax: 2, now: () => now });
      await at.attest(5);
      now = 999;
      expect((await at.attest(5)).cached).toBe(true);
      now = 1000;
      expect((await at.attest(5)).cached).toBe(false);
      at.forget(5);
      expect((await at.attest(5)).cached).toBe(false);
      await at.attest(6);
      await at.attest(7); // evicts 5, the oldest
      expect((await at.attest(5)).cached).toBe(false);
    });

    describe("with the start time captured with the pid (the kernel's record of a connection)", () => {
      test("a cached hit still reads the start time and compares it with the one given", async () => {
        const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
        const p = probe();
        const at = new Attestation(fs, [p]);
        await at.attest(5, 10);
        fs.log.length = 0;
        expect(await at.attest(5, 10)).toEqual({ pid: 5, startTime: 10, selectors: ["test:k:v"], cached: true });
        expect(fs.log).toEqual(["read /proc/5/stat"]);
        expect(p.calls).toBe(1);
      });

      const reuses: [string, (fs: FakeProcFs) => void][] = [
        ["the same executable and owner", () => {}],
        ["another executable", (fs) => fs.set("/proc/5/exe", { link: "/bin/x", stat: { ino: 99n } })],
        ["another owner", (fs) => fs.set("/proc/5", { stat: { isDirectory: true, uid: 0, gid: 0 } })],
      ];
      for (const [name, change] of reuses) {
        test(`the caller gone and its pid reused by a process with ${name}: refused (attest_process_changed), its cached result not used`, async () => {
          const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
          const p = probe();
          const at = new Attestation(fs, [p]);
          await at.attest(5, 10);
          fs.addProcess({ pid: 5, startTime: 20 });
          change(fs);
          expect(await codeOf(at.attest(5, 10))).toBe("attest_process_changed");
          expect(p.calls).toBe(1);
          // the new process's own connection is attested afresh
          expect(await at.attest(5, 20)).toMatchObject({ startTime: 20, cached: false });
        });
      }
    });

    test("a cached result still refuses a stale start time", async () => {
      const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
      const at = new Attestation(fs, [probe()]);
      await at.attest(5, 10);
      expect(await codeOf(at.attest(5, 9))).toBe("attest_process_changed");
    });
  });
});

describe("Attestation with the kernel's print (kernelPrint)", () => {
  /** A kernel print of whatever the fake /proc holds for the pid, in the kernel's own formats; null when told to or when there is no such process. */
  function kernel(fs: FakeProcFs) {
    const k = {
      calls: 0,
      answer: true,
      exe: "k254:0:1234",
      owner: "1000:1000",
      print: (pid: number): Fingerprint | null => {
        k.calls++;
        const stat = fs.nodes.get(`/proc/${pid}/stat`);
        if (!k.answer || stat === undefined || !("text" in stat)) return null;
        return { startTime: Number(stat.text!.split(") ")[1]!.split(" ")[19]), exe: k.exe, owner: k.owner };
      },
    };
    return k;
  }

  test("a cached hit is one call to the kernel and no read of /proc", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    const k = kernel(fs);
    const p = probe();
    const at = new Attestation(fs, [p], { kernelPrint: k.print });
    expect(await at.attest(5, 10)).toMatchObject({ startTime: 10, cached: false });
    fs.log.length = 0;
    k.calls = 0;
    expect(await at.attest(5, 10)).toEqual({ pid: 5, startTime: 10, selectors: ["test:k:v"], cached: true });
    expect(fs.log).toEqual([]);
    expect(k.calls).toBe(1);
    expect(p.calls).toBe(1);
  });

  test("a start time other than the captured one: attest_process_changed, the attestors not run", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    const p = probe();
    const at = new Attestation(fs, [p], { kernelPrint: kernel(fs).print });
    expect(await codeOf(at.attest(5, 9))).toBe("attest_process_changed");
    expect(p.calls).toBe(0);
  });

  test("the caller gone and its pid reused: refused, its cached result not used", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    const p = probe();
    const at = new Attestation(fs, [p], { kernelPrint: kernel(fs).print });
    await at.attest(5, 10);
    fs.addProcess({ pid: 5, startTime: 20 });
    expect(await codeOf(at.attest(5, 10))).toBe("attest_process_changed");
    expect(await at.attest(5, 20)).toMatchObject({ startTime: 20, cached: false });
    expect(p.calls).toBe(2);
  });

  test("the process execs another file during attestation: attest_process_changed", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    const k = kernel(fs);
    const at = new Attestation(fs, [probe(() => (k.exe = "k254:0:99"))], { kernelPrint: k.print });
    expect(await codeOf(at.attest(5))).toBe("attest_process_changed");
  });

  test("another executable or owner since the cached result: attested afresh", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    const k = kernel(fs);
    const p = probe();
    const at = new Attestation(fs, [p], { kernelPrint: k.print });
    await at.attest(5, 10);
    k.exe = "k254:0:99";
    expect((await at.attest(5, 10)).cached).toBe(false);
    expect((await at.attest(5, 10)).cached).toBe(true);
    k.owner = "0:0";
    expect((await at.attest(5, 10)).cached).toBe(false);
    expect(p.calls).toBe(3);
  });

  test("no answer from the kernel: /proc is read, and its refusals keep their reasons", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 }).addProcess({ pid: 2, startTime: 1 });
    fs.nodes.delete("/proc/2/exe");
    const k = kernel(fs);
    k.answer = false;
    const at = new Attestation(fs, [probe()], { kernelPrint: k.print });
    expect(await at.attest(5, 10)).toMatchObject({ startTime: 10, cached: false });
    expect(fs.log).toContain("read /proc/5/stat");
    expect(await codeOf(at.attest(6))).toBe("attest_no_process");
    expect(await codeOf(at.attest(2))).toBe("attest_exe_unreadable");
    expect(await codeOf(at.attest(5, 9))).toBe("attest_process_changed");
  });

  test("a result cached from /proc is not served on the kernel's print, nor the other way round", async () => {
    const fs = new FakeProcFs().addProcess({ pid: 5, startTime: 10 });
    const k = kernel(fs);
    const p = probe();
    const at = new Attestation(fs, [p], { kernelPrint: k.print });
    k.answer = false;
    await at.attest(5, 10);
    k.answer = true;
    expect((await at.attest(5, 10)).cached).toBe(false);
    k.answer = false;
    expect((await at.attest(5, 10)).cached).toBe(false);
    expect(p.calls).toBe(3);
  });

  test("not a pid: attest_bad_pid, the kernel not asked", async () => {
    const fs = new FakeProcFs();
    const k = kernel(fs);
    const at = new Attestation(fs, [probe()], { kernelPrint: k.print });
    for (const pid of [0, -1, 1.5, Number.NaN, 2 ** 40]) expect(await codeOf(at.attest(pid))).toBe("attest_bad_pid");
    expect(k.calls).toBe(0);
  });
});

describe("cgroup and tidegate attestors", () => {
  const ID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  const dir = (uid: number) => ({ stat: { isDirectory: true, uid } });

  test("cgroup:path always; container:id and k8s:pod-uid only from root-owned cgroups", async () => {
    const pod = "/kubepods/burstable/pod2c9b4a6e-1f3d-4e5a-9b7c-0d1e2f3a4b5c";
    const fs = new FakeProcFs().addProcess({ pid: 5, cgroup: `${pod}/${ID}` }).set(`/cg${pod}/${ID}`, dir(0)).set(`/cg${pod}`, dir(0));
    const a = new CgroupAttestor(fs, "/cg");
    expect(await a.attest({ pid: 5, startTime: 0 })).toEqual([`cgroup:path:${pod}/${ID}`, `container:id:${ID}`, "k8s:pod-uid:2c9b4a6e-1f3d-4e5a-9b7c-0d1e2f3a4b5c"]);
    fs.set(`/cg${pod}/${ID}`, dir(1000));
    expect(await a.attest({ pid: 5, startTime: 0 })).toEqual([`cgroup:path:${pod}/${ID}`, "k8s:pod-uid:2c9b4a6e-1f3d-4e5a-9b7c-0d1e2f3a4b5c"]);
    fs.nodes.delete(`/cg${pod}`);
    expect(await a.attest({ pid: 5, startTime: 0 })).toEqual([`cgroup:path:${pod}/${ID}`]);
  });

  test("tidegate:workload:NAME for <cgroupName>/workloads/NAME and below, all root-owned", async () => {
    const fs = new FakeProcFs()
      .addProcess({ pid: 5, cgroup: "/tg/workloads/web" })
      .addProcess({ pid: 6, cgroup: "/tg/workloads/web/sub" })
      .addProcess({ pid: 7, cgroup: "/tg/other/web" })
      .addProcess({ pid: 8, cgroup: "/tgx/workloads/web" })
      .set("/cg/tg", dir(0))
      .set("/cg/tg/workloads", dir(0))
      .set("/cg/tg/workloads/web", dir(0))
      .set("/cg/tg/workloads/web/sub", dir(0));
    const a = new TidegateAttestor(fs, "/cg", "tg");
    expect(await a.attest({ pid: 5, startTime: 0 })).toEqual(["tidegate:workload:web"]);
    expect(await a.attest({ pid: 6, startTime: 0 })).toEqual(["tidegate:workload:web"]);
    expect(await a.attest({ pid: 7, startTime: 0 })).toEqual([]);
    expect(await a.attest({ pid: 8, startTime: 0 })).toEqual([]);
  });

  test("a workload cgroup not owned by root: attest_cgroup_untrusted", async () => {
    for (const bad of ["/cg/tg/workloads/web", "/cg/tg/workloads/web/sub", "/cg/tg"]) {
      const fs = new FakeProcFs()
        .addProcess({ pid: 6, cgroup: "/tg/workloads/web/sub" })
        .set("/cg/tg", dir(0))
        .set("/cg/tg/workloads", dir(0))
        .set("/cg/tg/workloads/web", dir(0))
        .set("/cg/tg/workloads/web/sub", dir(0))
        .set(bad, dir(1000));
      expect(await codeOf(new TidegateAttestor(fs, "/cg", "tg").attest({ pid: 6, startTime: 0 }))).toBe("attest_cgroup_untrusted");
    }
  });
});
