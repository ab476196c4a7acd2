// The accept-time pinning of a run.sock caller with injected look-ups: every branch of the
// combining rule in run-caller.ts, the order of the reads (pidfd, then /proc, then the pidfd again),
// and that a refused pidfd is closed while an accepted one is handed on. The same against the real
// kernel: run-service.test.ts ("a caller that exits after connecting ...") and peer-pidfd.test.ts.
import { describe, expect, test } from "bun:test";
import { Errno } from "../runtime/libc.ts";
import { UnixFdError } from "../runtime/unix-fds.ts";
import { confirmCaller, pinCaller, type CallerLookups, type CallerRefusalCode } from "./run-caller.ts";

const PID = 4242;
const PIDFD = 77;
const START = 123_456;

interface Fake {
  pidfd?: () => number | null;
  start?: number | null;
  /** What the pidfd says, once asked. */
  now?: () => number;
}

function run(f: Fake) {
  const calls: string[] = [];
  const closed: number[] = [];
  const look: CallerLookups = {
    peerPidfd: () => (calls.push("pidfd"), (f.pidfd ?? (() => PIDFD))()),
    startTime: (pid) => (calls.push(`stat ${pid}`), f.start === undefined ? START : f.start),
    pidfdPid: (fd) => (calls.push(`fdinfo ${fd}`), (f.now ?? (() => PID))()),
    close: (fd) => void closed.push(fd),
  };
  return { pin: pinCaller(PID, look), calls, closed };
}

const failing = (errno: number) => () => {
  throw new UnixFdError("unix_fds_failed", "unix sockets: getsockopt(SO_PEERPIDFD) failed", errno);
};

describe("pinCaller", () => {
  test("a live caller: the pidfd is taken first, /proc read next, the pidfd asked last; it is handed on, not closed", () => {
    const r = run({});
    expect(r.pin).toEqual({ ok: true, startTime: START, pidfd: PIDFD });
    expect(r.calls).toEqual(["pidfd", `stat ${PID}`, `fdinfo ${PIDFD}`]);
    expect(r.closed).toEqual([]);
  });

  test("no SO_PEERPIDFD (a kernel before 6.5): the start time as read, unpinned, as before", () => {
    expect(run({ pidfd: () => null }).pin).toEqual({ ok: true, startTime: START, pidfd: null });
    expect(run({ pidfd: () => null, start: null }).pin).toEqual({ ok: true, startTime: null, pidfd: null });
    expect(run({ pidfd: () => null }).calls).toEqual(["pidfd", `stat ${PID}`]);
  });

  const refusals: [string, Fake, CallerRefusalCode, RegExp][] = [
    ["reaped before accept: no pidfd (ESRCH)", { pidfd: failing(Errno.ESRCH) }, "run_caller_exited", /^run: the calling process \(pid 4242\) exited before its connection was accepted$/],
    ["reaped before accept: no pidfd (EINVAL, Linux 6.5 to 6.8)", { pidfd: failing(Errno.EINVAL) }, "run_caller_exited", /exited before its connection was accepted/],
    ["the pidfd cannot be had otherwise (EMFILE)", { pidfd: failing(Errno.EMFILE) }, "run_caller_unverified", /^run: cannot tell which process \(pid 4242\) connected: unix sockets: getsockopt/],
    ["reaped by the time /proc was read: the read may be of another process", { now: () => -1 }, "run_caller_exited", /^run: the calling process \(pid 4242\) exited before its connection was accepted$/],
    ["the pidfd names another pid", { now: () => 4243 }, "run_caller_unverified", /^run: the process that connected holds pid 4243, not pid 4242$/],
    ["a pid namespace the agent's /proc does not see (Pid: 0)", { now: () => 0 }, "run_caller_unverified", /holds pid 0, not pid 4242/],
    ["the pidfd's fdinfo cannot be read", { now: failing(Errno.EBADF) }, "run_caller_unverified", /^run: cannot tell whether the calling process \(pid 4242\) still runs/],
    ["no start time though the caller still holds its pid", { start: null }, "run_caller_unverified", /^run: cannot read the start time of the calling process \(pid 4242\), though it is still running$/],
  ];
  for (const [name, fake, code, message] of refusals) {
    test(`refused: ${name}: ${code}`, () => {
      const r = run(fake);
      expect(r.pin.ok).toBe(false);
      if (r.pin.ok) return;
      expect(r.pin.code).toBe(code);
      expect(r.pin.message).toMatch(message);
      // a pidfd that was taken is closed; none is handed on
      expect(r.closed).toEqual(r.calls.includes(`fdinfo ${PIDFD}`) ? [PIDFD] : []);
    });
  }

  test("a look-up that throws something without errno is unverified, never accepted", () => {
    const r = run({
      pidfd: () => {
        throw new Error("boom");
      },
    });
    expect(r.pin).toMatchObject({ ok: false, code: "run_caller_unverified" });
  });
});

describe("confirmCaller", () => {
  test("null while the pidfd still holds the pid; a refusal naming when, else", () => {
    expect(confirmCaller(PID, PIDFD, { pidfdPid: () => PID }, "while it was attested")).toBeNull();
    expect(confirmCaller(PID, PIDFD, { pidfdPid: () => -1 }, "while it was attested")).toEqual({ ok: false, code: "run_caller_exited", message: "run: the calling process (pid 4242) exited while it was attested" });
  });
});
