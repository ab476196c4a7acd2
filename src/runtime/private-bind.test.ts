// Sockets that appear with their final mode (private-bind.ts): bound in a fresh 0700 folder and
// renamed into place, the folder removed, failures leaving nothing behind. Then the real socket
// makers (serveUnix for agent.sock and server.sock, RunService for run.sock) under umask 000 in
// a traverse-only (0711) run folder, as on an agent's restart with capture: a root watcher sees
// every name arrive by a rename and never by a create (inotify), and every mode it stats is 0600;
// a process of another user (nobody) that tries to connect in a tight loop never gets in, while a
// control socket bound plainly in the same folder is 0777 and lets it in. The second part needs
// root (setpriv, chown); it skips with a message otherwise, except under CI.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { waitFor } from "../../test/helpers/processes.ts";
import { bindPrivately, PrivateBindError } from "./private-bind.ts";
import * as u from "./unix-fds.ts";

const isRoot = process.getuid?.() === 0;
if (!isRoot && process.env.CI) throw new Error("private-bind.test.ts: CI must run as root");
if (!isRoot) console.warn("private-bind.test.ts: the umask 000 test is skipped (needs root: callers run as nobody, chown of run.sock)");

const REPO = join(import.meta.dir, "../..");
const base = mkdtempSync(join(tmpdir(), "tidegate-test-private-bind-"));
chmodSync(base, 0o755);
afterAll(() => rmSync(base, { recursive: true, force: true }));

const freshFolders = (dir: string) => readdirSync(dir).filter((n) => n.startsWith(".tg-"));

/** Runs `fn` with the process's umask set to `mask`, then puts the old one back. */
function withUmask<T>(mask: number, fn: () => T): T {
  const old = process.umask(mask);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

describe("bindPrivately", () => {
  test("under umask 000 the socket is bound in a fresh 0700 folder, appears at its path with its mode, and the folder goes", () => {
    const dir = join(base, "unit");
    mkdirSync(dir, { mode: 0o711 });
    const path = join(dir, "agent.sock");
    const seen: { at: string; folderMode: number; pathThere: boolean }[] = [];
    const fd = withUmask(0, () =>
      bindPrivately(path, 0o600, (at) => {
        seen.push({ at, folderMode: statSync(join(at, "..")).mode & 0o7777, pathThere: existsSync(path) });
        return u.listenUnix(at);
      }, (l) => u.closeFd(l)),
    );
    try {
      expect(seen).toHaveLength(1);
      expect(seen[0]!.at).toMatch(new RegExp(`^${dir}/\\.tg-[A-Za-z0-9]{6}/s$`));
      expect(seen[0]!.folderMode).toBe(0o700);
      expect(seen[0]!.pathThere).toBe(false); // nothing at the path while the socket had the umask's mode
      const s = lstatSync(path);
      expect(s.isSocket()).toBe(true);
      expect(s.mode & 0o7777).toBe(0o600);
      expect(freshFolders(dir)).toEqual([]);
      // the listener answers at its final path
      const c = u.connectUnix(path);
      const accepted = u.acceptConnection(fd);
      expect(accepted).not.toBeNull();
      u.closeFd(accepted!);
      u.closeFd(c);
    } finally {
      u.closeFd(fd);
    }
  });

  test("a bind that fails: its error comes out, nothing is left in the folder", () => {
    const dir = join(base, "bind-fails");
    mkdirSync(dir);
    const boom = new Error("bind failed");
    expect(() => bindPrivately(join(dir, "x.sock"), 0o600, () => { throw boom; }, () => {})).toThrow(boom);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("a move that fails (a folder in the socket's place): the listener is closed, the error comes out, nothing is left", () => {
    const dir = join(base, "move-fails");
    mkdirSync(join(dir, "x.sock", "inside"), { recursive: true });
    let closed: number | null = null;
    let listener = -1;
    let error: unknown = null;
    try {
      bindPrivately(join(dir, "x.sock"), 0o600, (at) => (listener = u.listenUnix(at)), (l) => {
        closed = l;
        u.closeFd(l);
      });
    } catch (e) {
      error = e;
    }
    expect((error as { code?: string } | null)?.code).toMatch(/^(EISDIR|ENOTEMPTY|EEXIST)$/);
    expect(closed).not.toBeNull();
    expect(closed!).toBe(listener);
    expect(readdirSync(dir)).toEqual(["x.sock"]);
    expect(statSync(join(dir, "x.sock")).isDirectory()).toBe(true);
  });

  test("a folder too long for a socket address with the fresh folder: socket_path_too_long naming the path, nothing made", () => {
    const dir = join(base, "l".repeat(Math.max(1, 95 - base.length)));
    mkdirSync(dir);
    const path = join(dir, "a.sock");
    let error: unknown = null;
    try {
      bindPrivately(path, 0o600, () => 0, () => {});
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(PrivateBindError);
    expect((error as PrivateBindError).code).toBe("socket_path_too_long");
    expect((error as Error).message).toContain(JSON.stringify(path));
    expect(readdirSync(dir)).toEqual([]);
  });
});

/** The run folder's sockets, made again and again by a child with umask 000 (the code under test). */
const MAKER = (dir: string, cycles: number) => `
import { join } from "node:path";
import { rmSync } from "node:fs";
import { serveUnix } from ${JSON.stringify(join(REPO, "src/runtime/unix-http.ts"))};
import { RunService } from ${JSON.stringify(join(REPO, "src/agent/run-service.ts"))};
import { memoryLogger } from ${JSON.stringify(join(REPO, "src/runtime/log.ts"))};
process.umask(0);
console.log("umask " + process.umask().toString(8));
const dir = ${JSON.stringify(dir)};
// the control: a plain bind, as every socket was made before, shows what umask 000 gives
const control = Bun.serve({ unix: join(dir, "control.sock"), fetch: () => new Response("in") });
const host = {
  policy: () => null,
  generation: () => 1,
  prepareRun: () => { throw new Error("not in this test"); },
  release: () => {},
};
for (let i = 0; i < ${cycles}; i++) {
  const agent = serveUnix(join(dir, "agent.sock"), () => new Response("in"));
  const server = serveUnix(join(dir, "server.sock"), () => new Response("in"));
  const run = new RunService({ socketPath: join(dir, "run.sock"), host, logger: memoryLogger(), accounts: () => ({ passwd: "", group: "" }) });
  await Bun.sleep(3);
  run.stop();
  await agent.stop();
  await server.stop();
}
await Bun.sleep(200); // the prober's last tries on the control
control.stop(true);
rmSync(join(dir, "control.sock"), { force: true }); // Bun may remove it itself
console.log("done");
`;

/** Root: inotify on the folder (IN_CREATE, IN_MOVED_TO), and lstat of each name in a tight loop, until stdin closes. */
const WATCHER = `
import ctypes, json, os, select, stat, struct, sys
d, names = sys.argv[1], sys.argv[2].split(",")
libc = ctypes.CDLL(None, use_errno=True)
IN_MOVED_TO, IN_CREATE, IN_NONBLOCK = 0x80, 0x100, 0o4000
fd = libc.inotify_init1(IN_NONBLOCK)
if fd < 0 or libc.inotify_add_watch(fd, d.encode(), IN_CREATE | IN_MOVED_TO) < 0:
    raise OSError(ctypes.get_errno(), "inotify")
events, modes, folder, fresh = [], {n: set() for n in names}, set(), set()
def drain():
    while True:
        try:
            buf = os.read(fd, 65536)
        except BlockingIOError:
            return
        off = 0
        while off < len(buf):
            wd, mask, cookie, ln = struct.unpack_from("iIII", buf, off)
            name = buf[off + 16:off + 16 + ln].split(b"\\0", 1)[0].decode()
            off += 16 + ln
            events.append(["create" if mask & IN_CREATE else "moved_to", name])
            if name.startswith(".tg-"):
                try:
                    fresh.add(os.lstat(os.path.join(d, name)).st_mode & 0o7777)
                except FileNotFoundError:
                    pass
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    drain()
    for n in names:
        try:
            st = os.lstat(os.path.join(d, n))
        except FileNotFoundError:
            continue
        modes[n].add(("socket" if stat.S_ISSOCK(st.st_mode) else "other") + " " + oct(st.st_mode & 0o7777))
    folder.add(oct(os.stat(d).st_mode & 0o7777))
drain()
print(json.dumps({"events": events, "modes": {n: sorted(m) for n, m in modes.items()}, "folder": sorted(folder), "fresh": sorted(oct(m) for m in fresh)}), flush=True)
`;

/** Another user: connects to each path in a tight loop (the control until it once gets in), until stdin closes. */
const PROBER = `
import json, select, socket, sys
paths = sys.argv[1:]
got, tries = {p: 0 for p in paths}, 0
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    for p in paths:
        if p.endswith("control.sock") and got[p] > 0:
            continue
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(p)
            got[p] += 1
        except OSError:
            pass
        finally:
            s.close()
    tries += 1
print(json.dumps({"connected": got, "tries": tries}), flush=True)
`;

type Piped = Subprocess<"pipe", "pipe", "pipe">;

/** Collects a process's stdout: its text so far, whether a line was printed, and when it ended. */
function reader(p: Piped) {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    const r = p.stdout.getReader();
    for (let c = await r.read(); !c.done; c = await r.read()) text += decoder.decode(c.value, { stream: true });
  })();
  return { text: () => text, done, has: (line: string) => text.split("\n").includes(line) };
}

describe.skipIf(!isRoot)("agent.sock, server.sock and run.sock under umask 000", () => {
  test("each appears by a rename already 0600 in its 0711 folder; another user never connects (a plain bind's control lets it in)", async () => {
    const dir = join(base, "run");
    mkdirSync(dir);
    chmodSync(dir, 0o711); // traverse-only, as the run service leaves it for the next start
    const names = ["agent.sock", "server.sock", "run.sock", "control.sock"];
    const script = join(base, "maker.ts");
    writeFileSync(script, MAKER(dir, 60));
    const procs: Piped[] = [];
    try {
      const watcher = Bun.spawn(["/usr/bin/python3", "-c", WATCHER, dir, names.join(",")], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      const prober = Bun.spawn(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", PROBER, ...names.map((n) => join(dir, n))], { stdin: "pipe", stdout: "pipe", stderr: "pipe", cwd: "/" });
      procs.push(watcher, prober);
      const w = reader(watcher);
      const p = reader(prober);
      await waitFor("the watcher and the prober", () => (w.has("ready") && p.has("ready") ? true : undefined), 30_000, 20);
      const maker = Bun.spawn([process.execPath, "--no-env-file", script], { cwd: base, stdin: "pipe", stdout: "pipe", stderr: "pipe" });
      procs.push(maker);
      const m = reader(maker);
      const code = await maker.exited;
      await m.done;
      expect({ code, out: m.text(), err: await new Response(maker.stderr).text() }).toMatchObject({ code: 0, out: "umask 0\ndone\n" });
      for (const q of [watcher, prober]) q.stdin.end();
      await Promise.all([watcher.exited, prober.exited, w.done, p.done]);
      const seen = JSON.parse(w.text().split("\n")[1]!) as { events: [string, string][]; modes: Record<string, string[]>; folder: string[]; fresh: string[] };
      const probed = JSON.parse(p.text().split("\n")[1]!) as { connected: Record<string, number>; tries: number };

      // the control shows what the test's conditions do to a plain bind: created 0777, nobody gets in
      expect(seen.events).toContainEqual(["create", "control.sock"]);
      expect(seen.modes["control.sock"]).toEqual(["socket 0o777"]);
      expect(probed.connected[join(dir, "control.sock")]).toBeGreaterThan(0);

      for (const name of ["agent.sock", "server.sock", "run.sock"]) {
        const arrivals = seen.events.filter(([, n]) => n === name);
        expect(arrivals.length, name).toBe(60);
        expect(arrivals.filter(([how]) => how !== "moved_to").length, `${name}: times created in place (with the umask's mode)`).toBe(0);
        expect(seen.modes[name], name).toEqual(["socket 0o600"]);
        expect(probed.connected[join(dir, name)], name).toBe(0);
      }
      expect(probed.tries).toBeGreaterThan(0);
      expect(seen.folder).toEqual(["0o711"]);
      for (const mode of seen.fresh) expect(mode).toBe("0o700"); // those the watcher caught before they went
      expect(freshFolders(dir)).toEqual([]);
    } finally {
      for (const q of procs) if (q.exitCode === null && q.signalCode === null) q.kill("SIGKILL");
      await Promise.all(procs.map((q) => q.exited));
    }
  }, 120_000);
});
