/**
 * `<run-dir>/run.sock`: `tidegate run` for root and the members of the agent's run group
 * (DESIGN.md section 2, "Privileges"; docs/capture.md). Bun's Unix sockets give neither the peer's
 * credentials nor descriptors, so this socket is made through FFI (../runtime/unix-fds.ts): a
 * non-blocking listener polled every POLL_MS, one request per connection (run-protocol.ts).
 *
 * Guarantees:
 * - the caller is who the kernel says connected (SO_PEERCRED); run-decision.ts decides, and every
 *   refusal is logged (`run_refused`, with the caller's pid and uid) and answered with its reason;
 * - what is read of the caller's /proc/PID is of the process that connected: a pidfd the kernel
 *   took at connect() (SO_PEERPIDFD) pins the reads, at accept and around the --mcp-stdio
 *   attestation (run-caller.ts); a caller gone by then is refused. A kernel before 6.5 has no
 *   such option: the reads are then unpinned, as the agent logs once (`run_caller_unpinned`);
 * - an accepted request is started by the agent itself, as root, through the launcher
 *   (../run/launcher.ts) in the workload's cgroup, with the caller's own descriptors 0, 1, 2 as its
 *   stdin, stdout and stderr, the caller's environment and working directory, in a session of its
 *   own (plus the grant's CA bundle variables, ../run/ca-environment.ts); the received descriptors
 *   are closed in the agent as soon as the child has them;
 * - `run_started` and `run_ended` are logged; the answer is the exit code or the signal; a caller
 *   that goes away first has the command sent SIGHUP, as a hang-up of its terminal would;
 * - access: the socket is 0660 root:<run group> while that group exists in /etc/group, else 0600
 *   root's; the run folder is 0711 (traverse only, for the workloads' CA bundle beside the
 *   sockets); re-checked every few seconds and when the policy changes. agent.sock stays 0600.
 * Refused before the request is read: more connections than run-limits.ts allows (in all, per
 * user, and all users but root together). A request must arrive whole within REQUEST_TIMEOUT_MS,
 * carry exactly three descriptors and be at most 1 MiB.
 */
import { chmodSync, chownSync, closeSync, existsSync, lstatSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Subprocess } from "bun";
import type { Logger } from "../runtime/log.ts";
import type { Policy } from "../policy/model.ts";
import { findListedGroup, readAccountFiles, type AccountFiles } from "../run/accounts.ts";
import { agentLauncher, launcherArgv } from "../run/launcher.ts";
import * as u from "../runtime/unix-fds.ts";
import { peerPidfd, pidfdPid } from "../runtime/peer-pidfd.ts";
import { bindPrivately } from "../runtime/private-bind.ts";
import { TidegateError } from "../errors.ts";
import { decideRun, type RunTarget } from "./run-decision.ts";
import { confirmCaller, pinCaller, type CallerLookups } from "./run-caller.ts";
import { admitConnection } from "./run-limits.ts";
import { parseStartTime } from "../attest/proc-text.ts";
import { encodeLine, LineReader, MAX_NOTICE, noIdentityNotice, parseRequest, parseSignalLine, type RunRequest } from "./run-protocol.ts";
import type { Enforcer } from "./enforcer.ts";
import type { McpGate } from "../mcp/index.ts";
import { relayStdio } from "./mcp-stdio.ts";
import { isTerminal } from "../runtime/pty.ts";

/** How often the connections are served while any is open. */
export const POLL_MS = 20;
/**
 * How often the socket is looked at with no connection open. A waiting connection raises SIGIO
 * (`signalWhenReadable`) and is taken at once; this poll is the safety net, and how soon a change
 * of the run group reaches the socket's mode.
 */
export const IDLE_POLL_MS = 1000;
export { MAX_CONNECTIONS, MAX_CONNECTIONS_PER_USER, ROOT_RESERVE } from "./run-limits.ts";
export const REQUEST_TIMEOUT_MS = 10_000;
/** How long a --mcp-stdio server may outlive its caller after SIGHUP before SIGKILL. */
export const HANGUP_GRACE_MS = 10_000;
const ACCESS_EVERY_MS = 5_000;
/**
 * The clock of every interval here (the request timeout, the socket's access re-check, the pause
 * between two logged failures): monotonic, so a step of the wall clock neither holds a slow
 * request's slot nor puts off the re-check for as long as the step.
 */
const monotonic = (): number => performance.now();
const READ_CHUNK = 64 * 1024;
/** Reads per connection per tick, so that one caller cannot hold the loop. */
const READS_PER_TICK = 32;

const LAUNCHER_PATH = "/usr/sbin:/usr/bin:/sbin:/bin";

/** The entries NUL-separated in a file only root could open, already unlinked: a descriptor to read. */
function environmentFile(env: readonly string[]): number {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-run-env-"));
  const path = join(dir, "env");
  try {
    writeFileSync(path, env.map((e) => `${e}\0`).join(""), { mode: 0o600 });
    return openSync(path, "r");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export class RunServiceError extends TidegateError<"run_socket_taken"> {}

/** The start time (clock ticks since boot, field 22 of /proc/PID/stat) of `pid`; null when it is gone. */
function startTimeOf(pid: number): number | null {
  try {
    return parseStartTime(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/** What the service needs from the agent (enforcer.ts). */
export interface RunHost {
  policy(): Pick<Policy, "workloads" | "agent"> | null;
  /** Counts good policy loads. */
  generation(): number;
  /** Makes the workload's cgroup with its kernel share written; throws TidegateError. */
  prepareRun(workload: string, opts?: { uncontained?: boolean; callerPid?: number }): { cgroup_dir: string; spiffe_id: string | null; no_identity?: string | null; ca_bundle?: string | null };
  release(workload: string): void;
  /** True when a `stdio[]` rule names the workload's identity as a server: callers other than root must then use --mcp-stdio. */
  isStdioServer?(workload: string): boolean;
  /** `--mcp-stdio`: the gate for the calling process and the workload (enforcer.ts mcpStdioGate); absent: refused. */
  mcpStdioGate?(callerPid: number, callerUid: number, workload: string, callerStartTime?: number): Promise<{ gate: McpGate; rule: string; caller: string; server: string } | { refused: { code: string; message: string } }>;
}

/** The agent's enforcer as a RunHost. */
export function runHostOf(e: Enforcer): RunHost {
  return {
    policy: () => e.holder.policy,
    generation: () => e.holder.generation,
    prepareRun: (workload, opts) => e.prepareRun(workload, opts),
    release: (workload) => void e.release(workload),
    mcpStdioGate: (pid, uid, workload, startTime) => e.mcpStdioGate(pid, uid, workload, startTime),
    isStdioServer: (workload) => e.isStdioServer(workload),
  };
}

export interface RunServiceOptions {
  readonly socketPath: string;
  readonly host: RunHost;
  readonly logger: Logger;
  /** /etc/passwd and /etc/group (tests inject theirs). */
  readonly accounts?: () => AccountFiles;
  /** How to run the launcher (default: this program again, agentLauncher). */
  readonly binary?: () => string | readonly string[];
  /** How modes and owners are changed (tests record the order). */
  readonly fileOps?: { chmod(path: string, mode: number): void; chown(path: string, uid: number, gid: number): void };
  /** The poll with no connection open (default IDLE_POLL_MS; tests make it long to see SIGIO at work). */
  readonly idlePollMs?: number;
  /** SO_PEERPIDFD of an accepted connection (tests stand in a kernel without it). */
  readonly peerPidfd?: (fd: number) => number | null;
}

interface Connection {
  readonly fd: number;
  readonly peer: u.PeerCredentials;
  /**
   * The start time of the caller's pid when its connection was accepted (null: already gone). A
   * --mcp-stdio caller is attested bound to it: the caller may hold its connection open for as
   * long as it likes, and a pid reused meanwhile by another process of the same uid must not be
   * attested in its place.
   */
  readonly startTime: number | null;
  /** The caller's pidfd (SO_PEERPIDFD), closed with the connection; null: refused at accept, or a kernel without it. */
  readonly pidfd: number | null;
  readonly opened: number;
  readonly reader: LineReader;
  fds: number[];
  state: "reading" | "starting" | "running" | "done";
  out: Uint8Array[];
  child: Subprocess | null;
  workload: string | null;
  /** The caller closed its side (or the connection failed): nothing more to read. */
  eof: boolean;
  /** A --mcp-stdio run: the server is killed if it outlives its caller by HANGUP_GRACE_MS. */
  mcp?: boolean;
}

export class RunService {
  private listenFd: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly unwatch: () => void;
  private readonly conns = new Set<Connection>();
  private unpinnedLogged = false;
  private access = { key: "", at: -Infinity, generation: -1 };
  private stopped = false;
  private failureLogged = -Infinity;

  constructor(private readonly o: RunServiceOptions) {
    const path = o.socketPath;
    if (existsSync(path)) {
      if (!lstatSync(path).isSocket()) throw new RunServiceError("run_socket_taken", `run: ${JSON.stringify(path)} exists and is not a socket`);
      unlinkSync(path);
    }
    // Bound where only root can reach it and moved into place 0600 (private-bind.ts): no umask
    // opens it to others before applyAccess gives it its mode.
    this.listenFd = bindPrivately(path, 0o600, (at) => u.listenUnix(at), (fd) => u.closeFd(fd));
    this.applyAccess(true);
    // An idle agent is woken by a connection instead of polling for one (50 times a second before).
    try {
      this.unwatch = u.signalWhenReadable(this.listenFd, () => this.wake());
    } catch (e) {
      u.closeFd(this.listenFd);
      rmSync(path, { force: true });
      throw e;
    }
    this.schedule();
  }

  /** The next look: soon while connections are open, else the idle safety poll. */
  private schedule(): void {
    this.timer = setTimeout(() => this.run(), this.conns.size > 0 ? POLL_MS : (this.o.idlePollMs ?? IDLE_POLL_MS));
  }

  private run(): void {
    this.timer = null;
    this.tick();
    if (!this.stopped) this.schedule();
  }

  /** A connection waits (SIGIO): serve now rather than at the next poll. */
  private wake(): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.run();
  }

  get connections(): number {
    return this.conns.size;
  }

  /**
   * Stops accepting and closes every connection (their callers see the stream end). Commands
   * already started keep running; their end is no longer reported.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.unwatch();
    u.closeFd(this.listenFd);
    for (const c of this.conns) this.close(c);
    try {
      unlinkSync(this.o.socketPath);
    } catch {
      // already gone
    }
  }

  private accounts(): AccountFiles {
    return (this.o.accounts ?? readAccountFiles)();
  }

  /**
   * Socket and folder modes for the run group in force: 0660 root:<group> with the group, else
   * 0600 root's. The folder is 0711: anyone may traverse it to read the workloads' CA bundle
   * (interception), nobody but root may list or change it; the sockets' own modes decide access.
   */
  private applyAccess(force = false): void {
    const now = monotonic();
    const generation = this.o.host.generation();
    if (!force && generation === this.access.generation && now - this.access.at < ACCESS_EVERY_MS) return;
    this.access.at = now;
    this.access.generation = generation;
    const group = this.o.host.policy()?.agent.runGroup ?? "tidegate";
    const gid = findListedGroup(this.accounts(), group);
    const path = this.o.socketPath;
    const dir = dirname(path);
    try {
      const want = gid === null ? { sock: 0o600, dir: 0o711, gid: 0 } : { sock: 0o660, dir: 0o711, gid };
      for (const [p, mode] of [[path, want.sock], [dir, want.dir]] as const) {
        const s = statSync(p);
        const had = s.mode & 0o7777;
        // Narrowed first, then the owner, then widened: never the new group with the old mode.
        const ops = this.o.fileOps ?? { chmod: chmodSync, chown: chownSync };
        if ((had & mode) !== had) ops.chmod(p, had & mode);
        if (s.uid !== 0 || s.gid !== want.gid) ops.chown(p, 0, want.gid);
        if ((had & mode) !== mode) ops.chmod(p, mode);
      }
      const key = `${group}:${gid}`;
      if (key !== this.access.key) {
        this.access.key = key;
        if (gid === null) this.o.logger.warn("run_socket", { socket: path, mode: "0600", group, effect: `group ${group} does not exist: only root can use run.sock` });
        else this.o.logger.info("run_socket", { socket: path, mode: "0660", group, gid });
      }
    } catch (e) {
      this.o.logger.error("run_socket_access_failed", { socket: path, error: e instanceof Error ? e.message : String(e) });
    }
  }

  private tick(): void {
    if (this.stopped) return;
    try {
      this.applyAccess();
      this.acceptAll();
      for (const c of this.conns) {
        try {
          this.service(c);
        } catch (e) {
          this.refuse(c, "run_failed", `run: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    } catch (e) {
      // Logged at most every 10 s: a lasting failure (EMFILE on accept) would repeat every tick.
      if (monotonic() - this.failureLogged < 10_000) return;
      this.failureLogged = monotonic();
      this.o.logger.error("run_service_failed", { error: e instanceof Error ? e.message : String(e) });
    }
  }

  private acceptAll(): void {
    for (;;) {
      let fd: number | null;
      try {
        fd = u.acceptConnection(this.listenFd);
      } catch (e) {
        // EMFILE and the like: serve the connections already open (they free descriptors) and retry next tick.
        if (monotonic() - this.failureLogged >= 10_000) {
          this.failureLogged = monotonic();
          this.o.logger.error("run_accept_failed", { error: e instanceof Error ? e.message : String(e) });
        }
        return;
      }
      if (fd === null) return;
      let peer: u.PeerCredentials;
      try {
        peer = u.peerCredentials(fd);
      } catch (e) {
        u.closeFd(fd);
        this.o.logger.error("run_refused", { reason: "no peer credentials", error: e instanceof Error ? e.message : String(e) });
        continue;
      }
      const busy = admitConnection(peer.uid, this.open(peer.uid));
      const pin = busy === null ? pinCaller(peer.pid, this.lookups(fd)) : null;
      const pinned = pin?.ok === true ? pin : null;
      const c: Connection = { fd, peer, startTime: pinned?.startTime ?? null, pidfd: pinned?.pidfd ?? null, opened: monotonic(), reader: new LineReader(), fds: [], state: "reading", out: [], child: null, workload: null, eof: false };
      this.conns.add(c);
      if (busy !== null) this.refuse(c, busy.code, busy.message);
      else if (pin !== null && !pin.ok) this.refuse(c, pin.code, pin.message);
    }
  }

  /** What run-limits.ts counts, before a connection of `uid` is added. */
  private open(uid: number): { total: number; ofUid: number; notRoot: number } {
    // Counted from the open connections themselves (at most MAX_CONNECTIONS, once per accept): no tally to keep in step.
    let ofUid = 0;
    let root = 0;
    for (const c of this.conns) {
      if (c.peer.uid === uid) ofUid++;
      if (c.peer.uid === 0) root++;
    }
    return { total: this.conns.size, ofUid, notRoot: this.conns.size - root };
  }

  private lookups(fd: number): CallerLookups {
    return {
      peerPidfd: () => {
        const pidfd = (this.o.peerPidfd ?? peerPidfd)(fd);
        if (pidfd === null && !this.unpinnedLogged) {
          this.unpinnedLogged = true;
          this.o.logger.warn("run_caller_unpinned", { effect: "this kernel has no SO_PEERPIDFD (Linux 6.5): a caller that exits before its connection is accepted could have its pid, reused, read as another process" });
        }
        return pidfd;
      },
      startTime: startTimeOf,
      pidfdPid: (pidfd) => pidfdPid(pidfd),
      close: (pidfd) => u.closeFd(pidfd),
    };
  }

  private service(c: Connection): void {
    if (c.state !== "done" && !c.eof) this.read(c);
    if (c.state === "reading" && monotonic() - c.opened > REQUEST_TIMEOUT_MS) this.refuse(c, "run_request_timeout", `run: no complete request within ${REQUEST_TIMEOUT_MS / 1000} s`);
    this.flush(c);
  }

  private read(c: Connection): void {
    for (let n = 0; n < READS_PER_TICK; n++) {
      let got: u.Received | null;
      try {
        got = u.receive(c.fd, READ_CHUNK);
      } catch (e) {
        got = { bytes: new Uint8Array(0), fds: [], truncated: false };
        if (c.state === "reading") this.o.logger.warn("run_connection_failed", { caller_pid: c.peer.pid, error: e instanceof Error ? e.message : String(e) });
      }
      if (got === null) return;
      // Descriptors come once, with the first bytes, and exactly three: any others are closed at
      // once and refuse the connection, so no caller can fill the agent's descriptor table.
      const first = c.fds.length === 0 && c.reader.bytesSeen === 0;
      if (c.state !== "reading" || !first || got.fds.length > 3) {
        for (const fd of got.fds) u.closeFd(fd);
        if (c.state === "reading" && got.fds.length > 0) return this.refuse(c, "run_bad_fds", "run: send exactly three descriptors, with the first bytes of the request");
      } else c.fds.push(...got.fds);
      if (c.state === "reading" && got.truncated) return this.refuse(c, "run_bad_fds", `run: more than ${u.MAX_FDS} descriptors sent`);
      if (got.bytes.length === 0) return this.ended(c);
      let lines: string[];
      try {
        lines = c.reader.push(got.bytes);
      } catch (e) {
        return this.refuse(c, e instanceof TidegateError ? e.code : "run_bad_request", e instanceof Error ? e.message : String(e));
      }
      for (const line of lines) {
        if (c.state === "reading") this.request(c, line);
        else if (c.state === "running") {
          const sig = parseSignalLine(line);
          if (sig !== null) c.child?.kill(sig);
        }
      }
      if (c.state === "done") return;
    }
  }

  /** End of stream from the caller. */
  private ended(c: Connection): void {
    if (c.state === "reading") return this.refuse(c, "run_request_truncated", "run: the connection ended before a complete request");
    c.eof = true;
    if (c.state === "running") {
      this.o.logger.warn("run_caller_gone", { caller_pid: c.peer.pid, caller_uid: c.peer.uid, workload: c.workload, pid: c.child?.pid ?? null, effect: "SIGHUP sent" });
      c.child?.kill("SIGHUP");
      // An MCP host that went away does not come back: a stdio server that ignores the hang-up
      // and its closed stdin would hold its workload's cgroup forever.
      const child = c.child;
      if (c.mcp === true && child !== null) setTimeout(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"), HANGUP_GRACE_MS).unref();
    }
  }

  private refuse(c: Connection, code: string, message: string, workload: string | null = null): void {
    this.o.logger.warn("run_refused", { caller_pid: c.peer.pid, caller_uid: c.peer.uid, caller_gid: c.peer.gid, workload, code, reason: message });
    this.answer(c, { error: { code, message } });
  }

  private answer(c: Connection, body: unknown): void {
    this.closeReceived(c);
    c.state = "done";
    c.out.push(encodeLine(body));
    this.flush(c);
  }

  private closeReceived(c: Connection): void {
    for (const fd of c.fds) u.closeFd(fd);
    c.fds = [];
  }

  /** Sends what is queued; a finished connection is closed once its answer is out. */
  private flush(c: Connection): void {
    try {
      while (c.out.length > 0) {
        const next = c.out[0]!;
        const n = u.sendWithFds(c.fd, next);
        if (n === null) return;
        if (n < next.length) c.out[0] = next.subarray(n);
        else c.out.shift();
      }
    } catch {
      c.out = []; // the caller is gone: nothing left to tell it
    }
    if (c.state === "done" && c.out.length === 0) this.close(c);
  }

  private close(c: Connection): void {
    this.closeReceived(c);
    if (!this.conns.delete(c)) return;
    u.closeFd(c.fd);
    if (c.pidfd !== null) u.closeFd(c.pidfd);
  }

  private request(c: Connection, line: string): void {
    let req: RunRequest;
    try {
      req = parseRequest(line);
    } catch (e) {
      return this.refuse(c, e instanceof TidegateError ? e.code : "run_bad_request", e instanceof Error ? e.message : String(e));
    }
    if (c.fds.length !== 3 || c.fds.some((fd) => fd < 3)) {
      return this.refuse(c, "run_bad_fds", `run: the request must carry exactly three descriptors (stdin, stdout, stderr), not ${c.fds.length}`, req.workload);
    }
    const d = decideRun({ caller: c.peer, request: req, policy: this.o.host.policy(), files: this.accounts() });
    if (!d.ok) return this.refuse(c, d.code, d.message, req.workload);
    // A stdio MCP server's pipes go through the gate: a caller that could start it without would
    // talk to it directly; one that runs as the server's user could open its pipes in /proc.
    if (req.mcpStdio !== true && c.peer.uid !== 0 && this.o.host.isStdioServer?.(req.workload) === true) {
      return this.refuse(c, "run_mcp_stdio_required", `run: workload ${req.workload} is a stdio MCP server (a stdio rule names it): start it with --mcp-stdio`, req.workload);
    }
    if (req.mcpStdio === true && d.target.uid === c.peer.uid) {
      return this.refuse(c, "run_mcp_same_user", `run: --mcp-stdio needs the server to run as another user than the caller (uid ${c.peer.uid}), or the caller could reach its pipes itself`, req.workload);
    }
    if (req.mcpStdio === true) {
      const target = d.target;
      void this.startMcp(c, req, target).catch((e: unknown) => this.refuse(c, "run_failed", `run: ${e instanceof Error ? e.message : String(e)}`, req.workload));
      return;
    }
    this.start(c, req, d.target);
  }

  /** `--mcp-stdio`: the caller is attested and a stdio rule found before anything is started. */
  private async startMcp(c: Connection, req: RunRequest, t: RunTarget): Promise<void> {
    c.state = "starting";
    const host = this.o.host;
    const g =
      host.mcpStdioGate === undefined
        ? { refused: { code: "run_mcp_unavailable", message: "run: this agent cannot relay MCP over stdio" } }
        : c.startTime === null
          ? { refused: { code: "run_mcp_caller_unknown", message: `run: the calling process (pid ${c.peer.pid}) was gone when its connection was accepted` } }
          : await host.mcpStdioGate(c.peer.pid, c.peer.uid, req.workload, c.startTime);
    if (c.state !== "starting" || this.stopped) return;
    // The gate read /proc/PID: it was the caller's only if the caller still holds its pid now.
    const gone = c.pidfd === null ? null : confirmCaller(c.peer.pid, c.pidfd, { pidfdPid }, "while it was attested");
    if (gone !== null) return this.refuse(c, gone.code, gone.message, req.workload);
    if ("refused" in g) return this.refuse(c, g.refused.code, g.refused.message, req.workload);
    if (c.eof) return this.refuse(c, "run_caller_gone", "run: the caller went away before the server started", req.workload);
    this.o.logger.info("run_mcp_stdio", { caller_pid: c.peer.pid, caller_id: g.caller, server_id: g.server, rule: g.rule, workload: req.workload });
    this.start(c, req, t, g.gate);
  }

  private start(c: Connection, req: RunRequest, t: RunTarget, mcp: McpGate | null = null): void {
    let grant: ReturnType<RunHost["prepareRun"]>;
    try {
      grant = this.o.host.prepareRun(req.workload, { uncontained: t.uid === 0, callerPid: c.peer.pid });
    } catch (e) {
      return this.refuse(c, e instanceof TidegateError ? e.code : "run_failed", e instanceof Error ? e.message : String(e), req.workload);
    }
    const self: { binary: string | readonly string[]; argv0?: string } = this.o.binary !== undefined ? { binary: this.o.binary() } : agentLauncher();
    // The caller's own pseudo-terminal for the run (its stdin was a terminal): the command's
    // controlling terminal. Only for a terminal that descriptor 0 really is, never with --mcp-stdio.
    const tty = req.tty === true && mcp === null && isTerminal(c.fds[0]!);
    const argv = launcherArgv({ binary: self.binary, cgroupDir: grant.cgroup_dir, uid: t.uid, gid: t.gid, groups: t.groups, allowRoot: t.allowRoot, cwd: t.cwd, envFd: 3, ...(grant.ca_bundle ? { caBundle: grant.ca_bundle } : {}), ...(tty ? { tty: true } : {}), command: req.command });
    let child: Subprocess;
    let envFd: number | null = null;
    // With --mcp-stdio the caller's stdin and stdout stay with the agent, bridged (mcp-stdio.ts).
    const callerIo = mcp !== null ? { stdin: c.fds[0]!, stdout: c.fds[1]! } : null;
    if (callerIo !== null) c.fds = c.fds.slice(2);
    try {
      // The caller's environment goes to the command only: the launcher runs as root with a fixed
      // environment of its own (a caller's LD_PRELOAD or BUN_OPTIONS would run as root) and reads
      // the command's from descriptor 3; it enters the caller's working directory as the user.
      envFd = environmentFile(req.env);
      const opts = { env: { PATH: LAUNCHER_PATH }, cwd: "/", detached: true, ...(self.argv0 !== undefined ? { argv0: self.argv0 } : {}) };
      child = callerIo !== null ? Bun.spawn(argv, { ...opts, stdio: ["pipe", "pipe", c.fds[0]!, envFd] }) : Bun.spawn(argv, { ...opts, stdio: [c.fds[0]!, c.fds[1]!, c.fds[2]!, envFd] });
    } catch (e) {
      if (callerIo !== null) for (const fd of [callerIo.stdin, callerIo.stdout]) u.closeFd(fd);
      return this.refuse(c, "run_spawn_failed", `run: cannot start the launcher: ${e instanceof Error ? e.message : String(e)}`, req.workload);
    } finally {
      this.closeReceived(c);
      if (envFd !== null) closeSync(envFd);
    }
    c.child = child;
    if (grant.no_identity != null) {
      c.out.push(encodeLine({ notice: noIdentityNotice(req.workload, grant.no_identity).slice(0, MAX_NOTICE) }));
      this.flush(c);
    }
    if (mcp !== null) c.mcp = true;
    c.workload = req.workload;
    c.state = "running";
    const who = { caller_pid: c.peer.pid, caller_uid: c.peer.uid, caller_gid: c.peer.gid, workload: req.workload };
    this.o.logger.info("run_started", { ...who, user: t.user, uid: t.uid, spiffe_id: grant.spiffe_id, pid: child.pid, command: req.command[0] });
    const relayed = callerIo !== null && mcp !== null ? relayStdio(mcp, child, callerIo, this.o.logger, who) : Promise.resolve();
    void Promise.all([child.exited, relayed]).then(([code]) => {
      const signal = child.signalCode;
      this.o.logger.info("run_ended", { ...who, pid: child.pid, exit: signal === null ? code : null, signal: signal ?? null });
      try {
        this.o.host.release(req.workload);
      } catch {
        // the enforcer sweeps empty workload cgroups itself as well
      }
      if (this.stopped || !this.conns.has(c)) return;
      this.answer(c, signal === null ? { exit: code } : { signal });
    });
  }
}
