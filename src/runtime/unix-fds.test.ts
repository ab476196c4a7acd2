// The FFI Unix socket pieces against the real kernel: a listener in a temp folder, SO_PEERCRED
// of this process and of another one, descriptors through SCM_RIGHTS (a pipe's write end, used on
// the other side), the kernel dropping descriptors that do not fit, end of stream, errors.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, readSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as u from "./unix-fds.ts";
import { pollUntil, thrownAs } from "../../test/helpers/fds.ts";
import { Errno, libc } from "./libc.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-test-unix-fds-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

const thrown = (fn: () => unknown): u.UnixFdError => thrownAs(u.UnixFdError, fn);

const until = pollUntil;

describe("unix-fds", () => {
  test("a socket pair's peer credentials are this process's pid, uid and gid", () => {
    const [a, b] = u.socketPair();
    try {
      expect(u.peerCredentials(a)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
      expect(u.peerCredentials(b).pid).toBe(process.pid);
    } finally {
      u.closeFd(a);
      u.closeFd(b);
    }
  });

  test("a listener accepts without blocking and names another process as the peer (as root: another uid and gid)", async () => {
    const path = join(dir, "l1.sock");
    const l = u.listenUnix(path);
    // As root the peer runs as uid 65534 and gid 33 (distinct, so a swapped field shows).
    const root = process.getuid!() === 0;
    if (root) chmodSync(dir, 0o755);
    chmodSync(path, 0o777);
    const as = root ? ["setpriv", "--reuid=65534", "--regid=33", "--clear-groups"] : [];
    try {
      expect(u.acceptConnection(l)).toBeNull();
      const py = Bun.spawn([...as, "/usr/bin/python3", "-c", `import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('ok',flush=True)\ntime.sleep(5)`, path], { stdout: "pipe" });
      try {
        const fd = await until(() => u.acceptConnection(l));
        expect(u.peerCredentials(fd)).toEqual(root ? { pid: py.pid, uid: 65534, gid: 33 } : { pid: py.pid, uid: process.getuid!(), gid: process.getgid!() });
        expect(u.receive(fd, 10)).toBeNull(); // nothing sent yet, and receive does not block
        u.closeFd(fd);
      } finally {
        py.kill();
        await py.exited;
      }
    } finally {
      u.closeFd(l);
    }
  });

  test("a pipe's write end passed with SCM_RIGHTS writes into the same pipe", async () => {
    const path = join(dir, "l2.sock");
    const l = u.listenUnix(path);
    const c = u.connectUnix(path);
    const s = await until(() => u.acceptConnection(l));
    const [r, w] = u.pipe();
    try {
      expect(u.sendWithFds(c, enc("request\n"), [w])).toBe(8);
      u.closeFd(w);
      const got = (await until(() => u.receive(s, 100)))!;
      expect(dec(got.bytes)).toBe("request\n");
      expect(got.truncated).toBe(false);
      expect(got.fds).toHaveLength(1);
      const fd = got.fds[0]!;
      expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe(readlinkSync(`/proc/self/fd/${r}`)); // the same pipe:[inode]
      writeSync(fd, "through the passed descriptor");
      u.closeFd(fd);
      const buf = Buffer.alloc(100);
      expect(buf.toString("utf8", 0, readSync(r, buf))).toBe("through the passed descriptor");
    } finally {
      for (const fd of [r, c, s, l]) u.closeFd(fd);
    }
  });

  test("three descriptors arrive in order with the first bytes; later bytes carry none", async () => {
    const [a, b] = u.socketPair();
    const pipes = [u.pipe(), u.pipe(), u.pipe()];
    try {
      u.sendWithFds(a, enc("one"), pipes.map((p) => p[1]));
      u.sendAll(a, enc("two"));
      const first = (await until(() => u.receive(b, 3)))!;
      expect(dec(first.bytes)).toBe("one");
      expect(first.fds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`))).toEqual(pipes.map((p) => readlinkSync(`/proc/self/fd/${p[1]}`)));
      const second = (await until(() => u.receive(b, 10)))!;
      expect([dec(second.bytes), second.fds]).toEqual(["two", []]);
      for (const fd of first.fds) u.closeFd(fd);
    } finally {
      for (const fd of [a, b, ...pipes.flat()]) u.closeFd(fd);
    }
  });

  test("descriptors beyond what fits are dropped by the kernel and reported as truncated", async () => {
    const path = join(dir, "l3.sock");
    const l = u.listenUnix(path);
    const py = Bun.spawn(["python3", "-c", `import socket,sys,os\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nr,w=os.pipe()\nsocket.send_fds(s,[b'x'],[w]*${u.MAX_FDS + 4})\ns.recv(1)`, path]);
    try {
      const s = await until(() => u.acceptConnection(l));
      const got = (await until(() => u.receive(s, 10)))!;
      expect(got.truncated).toBe(true);
      expect(got.fds.length).toBeLessThanOrEqual(u.MAX_FDS);
      for (const fd of got.fds) u.closeFd(fd);
      u.closeFd(s);
    } finally {
      py.kill();
      await py.exited;
      u.closeFd(l);
    }
  });

  test("end of stream reads as zero bytes; received descriptors are close-on-exec", async () => {
    const [a, b] = u.socketPair();
    const [r, w] = u.pipe();
    u.sendWithFds(a, enc("x"), [w]);
    u.closeFd(a);
    const got = (await until(() => u.receive(b, 10)))!;
    expect(libc().fcntl(got.fds[0]!, 1 /* F_GETFD */, 0) & 1 /* FD_CLOEXEC */).toBe(1);
    expect((await until(() => u.receive(b, 10)))!.bytes.length).toBe(0);
    for (const fd of [b, r, w, ...got.fds]) u.closeFd(fd);
  });

  test("failures carry errno and name the call; bad arguments are refused before any call", () => {
    const missing = thrown(() => u.connectUnix(join(dir, "absent.sock")));
    expect([missing.code, missing.errno]).toEqual(["unix_fds_failed", Errno.ENOENT]);
    expect(missing.message).toContain("connect(");
    expect(thrown(() => u.connectUnix("x".repeat(200))).code).toBe("unix_fds_bad_argument");
    expect(thrown(() => u.listenUnix("")).code).toBe("unix_fds_bad_argument");
    const taken = join(dir, "taken.sock");
    const l = u.listenUnix(taken);
    expect(thrown(() => u.listenUnix(taken)).errno).toBe(Errno.EADDRINUSE);
    u.closeFd(l);
    const [a, b] = u.socketPair();
    expect(thrown(() => u.sendWithFds(a, new Uint8Array(0), [1])).code).toBe("unix_fds_bad_argument");
    expect(thrown(() => u.sendWithFds(a, enc("x"), new Array(u.MAX_FDS + 1).fill(1))).code).toBe("unix_fds_bad_argument");
    expect(thrown(() => u.sendWithFds(a, enc("x"), [987654])).errno).toBe(Errno.EBADF);
    u.closeFd(b);
    expect(thrown(() => u.sendAll(a, enc("x"))).errno).toBe(Errno.EPIPE);
    u.closeFd(a);
    expect(() => u.closeFd(a)).not.toThrow();
  });
});

describe("signalWhenReadable", () => {
  /** The descriptor's file flags, from /proc (octal there). */
  const flagsOf = (fd: number) => parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1]!, 8);
  const O_ASYNC = 0o20000;

  test("a waiting connection signals the process and each watcher is told; once unwatched, nothing is", async () => {
    const path = join(dir, "sigio.sock");
    const listener = u.listenUnix(path);
    const other = u.listenUnix(join(dir, "sigio-other.sock"));
    let told = 0;
    let otherTold = 0;
    const unwatch = u.signalWhenReadable(listener, () => void told++);
    const unwatchOther = u.signalWhenReadable(other, () => void otherTold++);
    expect(flagsOf(listener) & O_ASYNC).toBe(O_ASYNC);
    expect(thrown(() => u.signalWhenReadable(listener, () => {})).code).toBe("unix_fds_bad_argument");
    const c = u.connectUnix(path);
    await until(() => (told > 0 ? true : null)); // no poll here: only the signal calls it
    expect(otherTold).toBeGreaterThan(0); // SIGIO names no descriptor: every watcher looks
    const accepted = u.acceptConnection(listener)!;
    expect(accepted).toBeGreaterThanOrEqual(0);
    expect(u.acceptConnection(other)).toBeNull(); // told, and nothing was waiting there
    unwatch();
    unwatchOther();
    expect(flagsOf(listener) & O_ASYNC).toBe(0);
    const before = told;
    const c2 = u.connectUnix(path);
    await Bun.sleep(200);
    expect(told).toBe(before);
    const late = u.acceptConnection(listener); // it was there; nobody was told
    expect(late).not.toBeNull();
    for (const fd of [c, c2, accepted, late!, listener, other]) u.closeFd(fd);
  });
});
