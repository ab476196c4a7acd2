// SO_PEERPIDFD and a pidfd's Pid: line against the real kernel: a socket pair (this process), a
// live peer in another process (as root: another uid), that peer once reaped, a peer reaped before
// the connection was accepted, and the failures. Skipped, with a message, on a kernel before 6.5.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as u from "./unix-fds.ts";
import { pollUntil, thrownAs } from "../../test/helpers/fds.ts";
import { peerPidfd, pidfdPid } from "./peer-pidfd.ts";
import { Errno, libc } from "./libc.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-test-peer-pidfd-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const root = process.getuid!() === 0;
if (root) chmodSync(dir, 0o755);

const supported = (() => {
  const [a, b] = u.socketPair();
  try {
    const fd = peerPidfd(a);
    if (fd !== null) u.closeFd(fd);
    return fd !== null;
  } finally {
    u.closeFd(a);
    u.closeFd(b);
  }
})();
if (!supported) console.warn("peer-pidfd: skipped (this kernel has no SO_PEERPIDFD: Linux 6.5)");

const thrown = (fn: () => unknown): u.UnixFdError => thrownAs(u.UnixFdError, fn);

const until = pollUntil;

/** A peer in another process (nobody's, as root) that connects to `path`, says so, then waits for stdin to close. */
function peer(path: string) {
  const as = root ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
  return Bun.spawn([...as, "/usr/bin/python3", "-c", "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('ok',flush=True)\nsys.stdin.read()", path], { stdin: "pipe", stdout: "pipe" });
}

describe.skipIf(!supported)("SO_PEERPIDFD", () => {
  test("a socket pair: a close-on-exec pidfd of this process", () => {
    const [a, b] = u.socketPair();
    const fd = peerPidfd(a)!;
    try {
      expect(pidfdPid(fd)).toBe(process.pid);
      expect(readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/pidfd/);
      expect(libc().fcntl(fd, 1 /* F_GETFD */, 0) & 1 /* FD_CLOEXEC */).toBe(1);
    } finally {
      for (const f of [fd, a, b]) u.closeFd(f);
    }
  });

  test("a live peer: its pidfd names its pid; once it is reaped, -1", async () => {
    const path = join(dir, "live.sock");
    const l = u.listenUnix(path);
    chmodSync(path, 0o777);
    const p = peer(path);
    try {
      const s = await until(() => u.acceptConnection(l));
      const fd = peerPidfd(s)!;
      expect(u.peerCredentials(s).pid).toBe(p.pid);
      expect(pidfdPid(fd)).toBe(p.pid);
      p.stdin.end();
      await p.exited; // reaped by Bun
      expect(pidfdPid(fd)).toBe(-1);
      for (const f of [fd, s]) u.closeFd(f);
    } finally {
      p.kill();
      await p.exited;
      u.closeFd(l);
    }
  });

  test("a peer reaped before its connection is accepted: no pidfd (ESRCH, EINVAL), or one that says -1", async () => {
    const path = join(dir, "gone.sock");
    const l = u.listenUnix(path);
    chmodSync(path, 0o777);
    const p = peer(path);
    p.stdin.end();
    await p.exited;
    const s = u.acceptConnection(l)!;
    try {
      expect(u.peerCredentials(s).pid).toBe(p.pid);
      let said: number | string;
      try {
        const fd = peerPidfd(s)!;
        said = pidfdPid(fd);
        u.closeFd(fd);
      } catch (e) {
        said = (e as u.UnixFdError).errno === Errno.ESRCH ? "ESRCH" : (e as u.UnixFdError).errno === Errno.EINVAL ? "EINVAL" : String(e);
      }
      expect([-1, "ESRCH", "EINVAL"]).toContain(said);
    } finally {
      u.closeFd(s);
      u.closeFd(l);
    }
  });

  test("failures carry errno: not a socket; a descriptor that is not a pidfd; a closed one", () => {
    const [r, w] = u.pipe();
    const notSocket = thrown(() => peerPidfd(r));
    expect([notSocket.code, notSocket.errno]).toEqual(["unix_fds_failed", Errno.ENOTSOCK]);
    expect(notSocket.message).toContain("getsockopt(SO_PEERPIDFD)");
    expect(thrown(() => pidfdPid(r)).code).toBe("unix_fds_bad_argument");
    u.closeFd(r);
    u.closeFd(w);
    const closed = thrown(() => pidfdPid(r));
    expect([closed.code, closed.errno]).toEqual(["unix_fds_failed", Errno.EBADF]);
  });
});
