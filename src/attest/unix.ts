/**
 * The unix attestor, in SPIRE's selector syntax: `unix:uid`, `unix:user`, `unix:gid`, `unix:group`,
 * `unix:supplementary_gid`, `unix:supplementary_group`, `unix:path`, `unix:sha256`.
 *
 * - uid and gid are the EFFECTIVE ids (second field of the Uid/Gid lines of /proc/PID/status), as
 *   SPIRE's unix attestor takes them (gopsutil's Uids()[1]): the effective id is the one the
 *   kernel checks, so it is what the process can do; a setuid program is attested as its owner.
 * - Supplementary groups are the "Groups:" line as it is (it may list the primary gid too).
 * - Names come from /etc/passwd and /etc/group (accounts.ts); an id without a name gets no name
 *   selector.
 * - path is the target of /proc/PID/exe. When the running file was deleted (the kernel appends
 *   " (deleted)" and the inode has no links left), the suffix is removed: the path is where the
 *   binary was; its sha256 still says what it was.
 * - sha256 is of the running executable, read through /proc/PID/exe (exe-hash.ts).
 */
import type { ProcessRef, WorkloadAttestor } from "./attestor.ts";
import { Accounts } from "./accounts.ts";
import { AttestError } from "./errors.ts";
import { ExeHashCache } from "./exe-hash.ts";
import { isGone, type FileStat, type ProcFs } from "./proc-fs.ts";
import { parseStatus } from "./proc-text.ts";

const DELETED = " (deleted)";

export class UnixAttestor implements WorkloadAttestor {
  readonly name = "unix";
  readonly #fs: ProcFs;
  readonly accounts: Accounts;
  readonly hashes: ExeHashCache;

  constructor(fs: ProcFs, opts: { accounts?: Accounts; hashes?: ExeHashCache } = {}) {
    this.#fs = fs;
    this.accounts = opts.accounts ?? new Accounts(fs);
    this.hashes = opts.hashes ?? new ExeHashCache(fs);
  }

  async attest(proc: ProcessRef): Promise<string[]> {
    const base = `/proc/${proc.pid}`;
    const creds = parseStatus(await this.#fs.readText(`${base}/status`), `${base}/status`);
    const uid = creds.uids[1];
    const gid = creds.gids[1];
    const out = [`unix:uid:${uid}`];
    const user = await this.accounts.userName(uid);
    if (user !== undefined) out.push(`unix:user:${user}`);
    out.push(`unix:gid:${gid}`);
    const group = await this.accounts.groupName(gid);
    if (group !== undefined) out.push(`unix:group:${group}`);
    for (const sg of creds.groups) {
      out.push(`unix:supplementary_gid:${sg}`);
      const name = await this.accounts.groupName(sg);
      if (name !== undefined) out.push(`unix:supplementary_group:${name}`);
    }
    const exe = `${base}/exe`;
    let path: string;
    let st: FileStat;
    try {
      path = await this.#fs.readlink(exe);
      st = await this.#fs.stat(exe);
    } catch (cause) {
      if (isGone(cause)) throw cause; // the orchestrator tells a vanished process from a kernel thread
      throw new AttestError("attest_exe_unreadable", `attest: cannot resolve the executable of pid ${proc.pid}`, { cause });
    }
    if (st.nlink === 0 && path.endsWith(DELETED)) path = path.slice(0, -DELETED.length);
    out.push(`unix:path:${path}`);
    let sha: string;
    try {
      sha = await this.hashes.sha256(exe, st);
    } catch (cause) {
      if (cause instanceof AttestError || isGone(cause)) throw cause;
      throw new AttestError("attest_exe_unreadable", `attest: cannot read the executable of pid ${proc.pid}`, { cause });
    }
    out.push(`unix:sha256:${sha}`);
    return out;
  }
}
