/**
 * The process side of `tidegate run` (../shared/DESIGN.md section 2, "Privileges"): the binary
 * re-executed as `tidegate __launch` joins the workload's cgroup, drops to the target user and
 * execs the command, so not one syscall of the command runs outside the cgroup or with a privilege.
 *
 * Guaranteed when `launch` reaches execve (it never returns then): the process is in the cgroup
 * (checked in /proc after the move); no_new_privs is set; for a non-root target the thread that
 * execs has empty inheritable, permitted, effective, bounding and ambient capability sets, every
 * thread has exactly the target uid, gid and supplementary groups (checked in /proc); the exec
 * thread is in a Landlock domain of its own where the kernel has Landlock ABI 6 (else `warn` says
 * so): no ptrace, signal or abstract Unix socket reaches out of it (`isolate`); signals
 * ignored or blocked by Bun are back to default; descriptors above 2 are close-on-exec; the
 * environment is the launcher's own (as its parent gave it, not as Bun or a .env file changed it)
 * minus `TIDEGATE_*`, with the CA bundle variables set when `caBundle` is given (ca-environment.ts).
 * Rejected, before any change: a root target without `allowRoot`, an empty
 * command. Every failure throws RunError and nothing is executed.
 */
import { readdirSync, readFileSync, realpathSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { quote } from "../errors.ts";
import * as c from "../runtime/libc.ts";
import { LibcError } from "../runtime/libc.ts";
import { parseMounts } from "../runtime/host.ts";
import { RunError, type RunErrorCode } from "./errors.ts";
import { readAccountFiles, supplementaryGroups } from "./accounts.ts";
import { withCaBundle } from "./ca-environment.ts";

export interface LaunchRequest {
  /** The workload's cgroup directory, on a cgroup v2 mount; it must exist. */
  readonly cgroupDir: string;
  readonly uid: number;
  readonly gid: number;
  /** Exactly these supplementary groups; default: what /etc/group gives the user (accounts.ts). */
  readonly groups?: readonly number[];
  /** Lets uid 0 through, with its capabilities (uncontained), still with no_new_privs. */
  readonly allowRoot?: boolean;
  /** argv of the command; argv[0] is looked up in PATH as execvp(3) does. */
  readonly command: readonly string[];
  /**
   * The working directory, entered after the privileges are dropped, so the kernel checks the
   * target user's own access (no check-then-use race against a caller who owns a folder on the way).
   */
  readonly cwd?: string;
  /**
   * A descriptor holding the command's environment (NUL-separated NAME=VALUE entries). The
   * launcher's own environment then stays the fixed one its starter gave it: a caller's variables
   * (LD_PRELOAD, BUN_OPTIONS...) must never reach the launcher while it is still root.
   */
  readonly envFd?: number;
  /**
   * The agent's workload trust bundle: SSL_CERT_FILE, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE and
   * CURL_CA_BUNDLE are set to it, over whatever the environment had for them.
   */
  readonly caBundle?: string;
  /**
   * Descriptor 0 is a pseudo-terminal made for this run (`tidegate run` relays it to the caller's
   * terminal, ../runtime/pty.ts): it becomes the controlling terminal of the command's session, so
   * /dev/tty, job control and Ctrl-C work inside. Never set for a caller's own terminal.
   */
  readonly tty?: boolean;
}

export interface LaunchIo {
  /** A line for the user before exec (the root warning); must be written before it returns. */
  warn(text: string): void;
}

const CGROUP2_SUPER_MAGIC = 0x63677270;
/** glibc's default search path when PATH is unset (confstr _CS_PATH). */
const DEFAULT_PATH = "/bin:/usr/bin";

function fail(code: RunErrorCode, message: string, cause?: unknown): never {
  throw new RunError(code, message, cause === undefined ? undefined : { cause });
}

/** Runs `step`, turning a libc failure into RunError `code` with the call and errno named. */
function step<T>(code: RunErrorCode, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RunError) throw e;
    const detail = e instanceof Error ? e.message : String(e);
    return fail(code, `run: ${what}: ${detail}`, e);
  }
}

/**
 * Joins, drops, execs. Returns only by throwing RunError. `drop` is dropPrivileges; tests pass a
 * faulty one to show that the checks after it refuse to exec.
 */
export function launch(req: LaunchRequest, io: LaunchIo, drop = dropPrivileges): never {
  const file = req.command[0];
  if (file === undefined || file === "") fail("run_bad_request", "run: no command given");
  if (req.uid === 0 && !req.allowRoot) {
    fail("run_root_refused", "run: refusing to run the command as root (uid 0): a root workload can leave its cgroup and remove tidegate's programs; pass --allow-root to run it uncontained");
  }
  const given = launchEnvironment(
    req.envFd !== undefined
      ? step("run_bad_request", `reading the environment from descriptor ${req.envFd}`, () => readFileSync(req.envFd!))
      : step("run_bad_request", "reading /proc/self/environ", () => readFileSync("/proc/self/environ")),
  );
  const env = req.caBundle === undefined ? given : withCaBundle(given, req.caBundle);
  const groups = req.groups ?? supplementaryGroups(readAccountFiles(), req.uid, req.gid);
  joinCgroup(req.cgroupDir);
  drop(req.uid, req.gid, groups);
  if (req.uid === 0) io.warn(`tidegate run: warning: running ${quote(file)} as root: uncontained (it can leave its cgroup and remove tidegate's programs)\n`);
  if (req.cwd !== undefined) {
    const cwd = req.cwd;
    step("run_bad_cwd", `entering the working directory ${quote(cwd)} as uid ${req.uid}`, () => process.chdir(cwd));
  }
  newSession();
  if (req.tty === true) step("run_privileges", "making the run's terminal the controlling terminal", () => c.setControllingTerminal(0));
  prepareExec();
  checkCredentials(readFileSync("/proc/thread-self/status", "utf8"), { uid: req.uid, gid: req.gid, groups, root: req.uid === 0 });
  checkAllThreads(req.uid, req.gid);
  isolate(io);
  return exec(req.command, env);
}

/** Landlock's ABI that scopes signals and abstract Unix sockets (Linux 6.12). */
const LANDLOCK_SCOPED_ABI = 6;

/**
 * Puts the command in a Landlock domain of its own (landlock(7)), so that it cannot ptrace,
 * signal, or read the ptrace-guarded /proc files (environ, mem, maps) of any process outside it:
 * another workload, even of the same uid (this kernel has no Yama), or an unmanaged process. Its
 * own children share the domain, and processes outside may still signal it (`tidegate run`
 * passes signals on). No file or network access is restricted; abstract Unix sockets made
 * outside the domain are out of its reach too (a way between workloads that capture cannot see).
 * A kernel without that Landlock: a warning, and the command runs without it.
 */
function isolate(io: LaunchIo): void {
  const abi = step("run_privileges", "asking the kernel for Landlock", () => c.landlockAbi());
  if (abi < LANDLOCK_SCOPED_ABI) {
    io.warn(`tidegate run: warning: this kernel's Landlock (${abi === 0 ? "none" : `ABI ${abi}`}, ABI ${LANDLOCK_SCOPED_ABI} needed) cannot keep the workload apart: another process of its uid can ptrace it, and it them\n`);
    return;
  }
  step("run_privileges", "entering a Landlock domain of its own", () => c.landlockScope(c.LANDLOCK_SCOPE_SIGNAL | c.LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET));
}

/**
 * Leaves the starter's session (setsid), so the caller's terminal is never the command's
 * controlling terminal: a workload must not push input into the terminal of whoever ran it
 * (TIOCSTI on a controlling terminal needs no privilege). With `tty`, the run's own pseudo-terminal
 * on descriptor 0 becomes the new session's controlling terminal afterwards. Already a session
 * leader (the agent starts it detached): nothing to do.
 */
function newSession(): void {
  step("run_privileges", "leaving the caller's session", () => {
    if (c.getsid() !== c.getpid()) c.setsid();
  });
}

/** The cgroup v2 mount that holds `dir` (longest matching mount point), or null. */
function cgroupMountOf(dir: string): string | null {
  const mounts = parseMounts(readFileSync("/proc/self/mounts", "utf8")).filter((m) => m.fstype === "cgroup2");
  const holding = mounts.map((m) => m.target).filter((t) => dir === t || dir.startsWith(t === "/" ? "/" : `${t}/`));
  return holding.sort((a, b) => b.length - a.length)[0] ?? null;
}

/**
 * Moves the whole process (every thread) into `dir`, then checks that /proc/self/cgroup and
 * /proc/thread-self/cgroup name it. The path is compared as seen from the cgroup namespace the
 * mount belongs to; where the two differ (a nested cgroup namespace) the check fails, closed.
 */
export function joinCgroup(cgroupDir: string): void {
  const dir = step("run_bad_cgroup", `cgroup ${quote(cgroupDir)}`, () => realpathSync(cgroupDir));
  const fsType = step("run_bad_cgroup", `cgroup ${quote(cgroupDir)}`, () => statfsSync(dir).type);
  const mount = cgroupMountOf(dir);
  if (fsType !== CGROUP2_SUPER_MAGIC || mount === null) fail("run_bad_cgroup", `run: ${quote(cgroupDir)} is not a cgroup v2 directory`);
  step("run_cgroup_join", `joining cgroup ${quote(dir)}`, () => writeFileSync(join(dir, "cgroup.procs"), `${c.getpid()}\n`));
  const want = dir === mount ? "/" : dir.slice(mount === "/" ? 0 : mount.length);
  for (const proc of ["/proc/self/cgroup", "/proc/thread-self/cgroup"]) {
    const line = readFileSync(proc, "utf8").split("\n").find((l) => l.startsWith("0::"));
    if (line?.slice(3) !== want) fail("run_cgroup_join", `run: joined cgroup ${quote(dir)} but ${proc} says ${quote(line ?? "no cgroup v2 line")}`);
  }
}

/** Every capability number the kernel knows: 0 to /proc/sys/kernel/cap_last_cap. */
function lastCapability(): number {
  const text = readFileSync("/proc/sys/kernel/cap_last_cap", "utf8").trim();
  if (!/^[0-9]{1,3}$/.test(text)) fail("run_privileges", `run: /proc/sys/kernel/cap_last_cap reads ${quote(text)}`);
  return Number(text);
}

/**
 * no_new_privs; for a non-root target the bounding and ambient sets emptied, then groups, gid
 * and uid (glibc applies these to every thread), then the exec thread's remaining sets emptied.
 */
export function dropPrivileges(uid: number, gid: number, groups: readonly number[]): void {
  step("run_privileges", "setting no_new_privs", () => c.prctl("PR_SET_NO_NEW_PRIVS", c.PR_SET_NO_NEW_PRIVS, 1));
  if (uid !== 0) {
    const last = lastCapability();
    step("run_privileges", "dropping the bounding set", () => {
      for (let cap = 0; cap <= last; cap++) c.prctl(`PR_CAPBSET_DROP, ${cap}`, c.PR_CAPBSET_DROP, cap);
    });
    step("run_privileges", "clearing the ambient set", () => c.prctl("PR_CAP_AMBIENT_CLEAR_ALL", c.PR_CAP_AMBIENT, c.PR_CAP_AMBIENT_CLEAR_ALL));
  }
  step("run_privileges", "setting groups", () => c.setgroups(groups));
  step("run_privileges", "setting gid", () => c.setresgid(gid));
  step("run_privileges", "setting uid", () => c.setresuid(uid));
  if (uid !== 0) step("run_privileges", "clearing capabilities", () => c.clearThreadCapabilities());
}

export interface ThreadStatus {
  readonly uids: readonly number[];
  readonly gids: readonly number[];
  readonly groups: readonly number[];
  readonly caps: Readonly<Record<"CapInh" | "CapPrm" | "CapEff" | "CapBnd" | "CapAmb", bigint>>;
  readonly noNewPrivs: number;
  readonly sigIgn: bigint;
  readonly sigBlk: bigint;
}

/** The fields of /proc/PID/status the launcher checks (proc(5)); a missing one is an error. */
export function parseStatus(text: string): ThreadStatus {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const get = (k: string): string => fields.get(k) ?? fail("run_privileges", `run: /proc status has no ${k} line`);
  const ids = (k: string): number[] => (get(k) === "" ? [] : get(k).split(/\s+/).map(Number));
  const hex = (k: string): bigint => {
    const v = get(k);
    if (!/^[0-9a-f]{1,16}$/.test(v)) fail("run_privileges", `run: /proc status ${k} reads ${quote(v)}`);
    return BigInt(`0x${v}`);
  };
  return {
    uids: ids("Uid"),
    gids: ids("Gid"),
    groups: ids("Groups"),
    caps: { CapInh: hex("CapInh"), CapPrm: hex("CapPrm"), CapEff: hex("CapEff"), CapBnd: hex("CapBnd"), CapAmb: hex("CapAmb") },
    noNewPrivs: Number(get("NoNewPrivs")),
    sigIgn: hex("SigIgn"),
    sigBlk: hex("SigBlk"),
  };
}

export interface Expected {
  readonly uid: number;
  readonly gid: number;
  readonly groups: readonly number[];
  /** A root target keeps its capabilities (allowed only with --allow-root). */
  readonly root: boolean;
}

/** What in `status` differs from the state exec needs; empty when nothing does. */
export function credentialProblems(status: ThreadStatus, want: Expected): string[] {
  const problems: string[] = [];
  const all = (v: readonly number[], id: number) => v.length === 4 && v.every((x) => x === id);
  if (!all(status.uids, want.uid)) problems.push(`Uid is ${status.uids.join(" ")}, want ${want.uid} x4`);
  if (!all(status.gids, want.gid)) problems.push(`Gid is ${status.gids.join(" ")}, want ${want.gid} x4`);
  const sorted = (v: readonly number[]) => [...new Set(v)].sort((a, b) => a - b).join(",");
  if (sorted(status.groups) !== sorted(want.groups)) problems.push(`Groups is ${sorted(status.groups)}, want ${sorted(want.groups)}`);
  if (status.noNewPrivs !== 1) problems.push(`NoNewPrivs is ${status.noNewPrivs}, want 1`);
  if (!want.root) for (const [k, v] of Object.entries(status.caps)) if (v !== 0n) problems.push(`${k} is ${v.toString(16)}, want 0`);
  return problems;
}

export function checkCredentials(statusText: string, want: Expected): void {
  const problems = credentialProblems(parseStatus(statusText), want);
  if (problems.length > 0) fail("run_privileges", `run: privileges not dropped as required: ${problems.join("; ")}`);
}

/** Every thread of this process has the target uid and gid (glibc's set*id reached all). */
function checkAllThreads(uid: number, gid: number): void {
  for (const task of readdirSync("/proc/self/task")) {
    let text: string;
    try {
      text = readFileSync(`/proc/self/task/${task}/status`, "utf8");
    } catch {
      continue; // the thread ended
    }
    const s = parseStatus(text);
    if (!s.uids.every((x) => x === uid) || !s.gids.every((x) => x === gid)) {
      fail("run_privileges", `run: thread ${task} still has Uid ${s.uids.join(" ")} Gid ${s.gids.join(" ")}`);
    }
  }
}

/** Signals Bun ignores (SIGPIPE, SIGXFSZ) back to default, the mask emptied, fds > 2 close-on-exec. */
function prepareExec(): void {
  const s = parseStatus(readFileSync("/proc/thread-self/status", "utf8"));
  step("run_privileges", "resetting signals", () => {
    for (let sig = 1; sig <= 64; sig++) {
      // 9 and 19 cannot be changed; 32 and 33 are glibc's own (cancellation, set*id).
      if (sig === 9 || sig === 19 || sig === 32 || sig === 33) continue;
      if ((s.sigIgn >> BigInt(sig - 1)) & 1n) c.defaultSignal(sig);
    }
    c.unblockAllSignals();
  });
  step("run_privileges", "closing descriptors", () => {
    for (const fd of readdirSync("/proc/self/fd").map(Number)) if (fd > 2) c.setCloseOnExec(fd);
  });
}

const INTERNAL_PREFIX = [...new TextEncoder().encode("TIDEGATE_")];

/** /proc/self/environ's entries, in order, minus every `TIDEGATE_*` name, as raw bytes. */
export function launchEnvironment(environ: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i <= environ.length; i++) {
    if (i < environ.length && environ[i] !== 0) continue;
    const entry = environ.subarray(start, i);
    start = i + 1;
    if (entry.length === 0) continue;
    if (!INTERNAL_PREFIX.every((b, j) => entry[j] === b)) out.push(entry);
  }
  return out;
}

function envValue(env: readonly Uint8Array[], name: string): string | undefined {
  const prefix = `${name}=`;
  for (const e of env) {
    const text = new TextDecoder().decode(e);
    if (text.startsWith(prefix)) return text.slice(prefix.length);
  }
  return undefined;
}

/** The paths execvp(3) tries for `file`: itself when it has a "/", else each PATH entry ("" is "."). */
export function searchPath(file: string, path: string | undefined): string[] {
  if (file.includes("/")) return [file];
  return (path ?? DEFAULT_PATH).split(":").map((dir) => (dir === "" ? file : `${dir.replace(/\/$/, "")}/${file}`));
}

/** errnos after which execvp(3) tries the next PATH entry. */
const TRY_NEXT = new Set<number>([c.Errno.ENOENT, c.Errno.ENOTDIR, c.Errno.ESTALE, c.Errno.ENODEV, c.Errno.EACCES]);

function execOne(path: string, argv: readonly string[], env: readonly Uint8Array[]): number {
  try {
    c.execve(path, argv, env);
  } catch (e) {
    if (!(e instanceof LibcError)) throw e;
    if (e.code !== "libc_failed") fail("run_bad_request", `run: ${e.message}`, e);
    if (e.errno !== c.Errno.ENOEXEC) return e.errno;
  }
  // A file without a #! line or ELF header runs under /bin/sh, as execvp(3) and shells do.
  try {
    c.execve("/bin/sh", ["/bin/sh", path, ...argv.slice(1)], env);
  } catch (e) {
    if (e instanceof LibcError) return e.errno;
    throw e;
  }
}

/** Whether `path` can be looked at by the (already dropped) launcher. */
function visible(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function exec(command: readonly string[], env: readonly Uint8Array[]): never {
  const file = command[0]!;
  const direct = file.includes("/");
  let denied = false;
  for (const candidate of searchPath(file, envValue(env, "PATH"))) {
    const errno = execOne(candidate, command, env);
    // EACCES from a directory on the way (another user's PATH entry) means "not there", as in a
    // shell; only a file that exists yet cannot be executed makes it "permission denied".
    if (errno === c.Errno.EACCES) denied ||= direct || visible(candidate);
    else if (!TRY_NEXT.has(errno)) fail("run_not_executable", `run: ${quote(file)}: cannot execute: ${c.errnoName(errno)}`);
  }
  if (denied) fail("run_not_executable", `run: ${quote(file)}: permission denied`);
  return fail("run_not_found", direct ? `run: ${quote(file)}: no such file or directory` : `run: ${quote(file)}: command not found`);
}

/**
 * The launcher's command line, built in one place: `binary` is what selfBinary() returns (or one
 * path). Values use the `--flag=value` form, and `--` ends the options before the command.
 */
export function launcherArgv(o: {
  binary: string | readonly string[];
  cgroupDir: string;
  uid: number;
  gid: number;
  groups?: readonly number[];
  allowRoot?: boolean;
  cwd?: string;
  envFd?: number;
  caBundle?: string;
  tty?: boolean;
  command: readonly string[];
}): string[] {
  const out = typeof o.binary === "string" ? [o.binary] : [...o.binary];
  out.push("__launch", `--cgroup-dir=${o.cgroupDir}`, `--uid=${o.uid}`, `--gid=${o.gid}`);
  if (o.groups !== undefined) out.push(`--groups=${o.groups.join(",")}`);
  if (o.allowRoot) out.push("--allow-root");
  if (o.cwd !== undefined) out.push(`--cwd=${o.cwd}`);
  if (o.envFd !== undefined) out.push(`--env-fd=${o.envFd}`);
  if (o.caBundle !== undefined) out.push(`--ca-bundle=${o.caBundle}`);
  if (o.tty === true) out.push("--tty");
  out.push("--", ...o.command);
  return out;
}

const REPO = resolve(import.meta.dir, "../..");

/** Running as the compiled binary (its modules in Bun's embedded file system), not from source. */
const compiled = () => import.meta.path.startsWith("/$bunfs/");

/**
 * How a long-running process (the agent) starts the launcher: the very binary it runs, through
 * /proc/self/exe, which a child resolves to its parent's executable even after an upgrade renamed
 * a new binary over the path (the old one, unlinked, stays readable there). Through the path, an
 * agent not yet restarted would start another version's launcher, whose options may differ.
 * `argv0` keeps the path as argv[0], for ps. From source: selfBinary().
 */
export function agentLauncher(): { readonly binary: readonly string[]; readonly argv0?: string } {
  return compiled() ? { binary: ["/proc/self/exe"], argv0: process.execPath } : { binary: selfBinary() };
}

/**
 * How to run this program again as the launcher. A compiled binary is itself
 * (`[process.execPath]`). From source it is Bun with src/cli/main.ts, told to read no .env,
 * bunfig.toml or tsconfig.json from the working directory (the workload's), as the compiled
 * binary is built not to.
 */
export function selfBinary(): string[] {
  if (compiled()) return [process.execPath];
  return [
    process.execPath,
    "--no-env-file",
    `--config=${join(REPO, "bunfig.toml")}`,
    `--tsconfig-override=${join(REPO, "tsconfig.json")}`,
    join(REPO, "src/cli/main.ts"),
  ];
}
