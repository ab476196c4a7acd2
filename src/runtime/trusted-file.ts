/**
 * Whether a file that tells a root process what to do (the agent's config and policy) can be
 * trusted: the file and its folder belong to root (or to the user the process runs as) and no
 * one else can write them, as sshd's StrictModes asks of its files. Otherwise a local user who
 * can change the file, or replace it through its folder, would choose the policy and the
 * identities. Symlinks are followed: the real file and its real folder are checked.
 */
import { realpathSync, statSync } from "node:fs";
import { dirname } from "node:path";

export interface FileFacts {
  readonly uid: number;
  readonly mode: number;
  isFile(): boolean;
}

const owners = (euid: number) => (euid === 0 ? [0] : [0, euid]);

/** Why `path` cannot be trusted by a process running as `euid`; null when it can (or is absent). */
export function untrustedFileReason(
  path: string,
  euid: number,
  io: { stat: (p: string) => FileFacts; realpath: (p: string) => string } = { stat: statSync, realpath: realpathSync },
): string | null {
  let real: string;
  let st: FileFacts;
  try {
    real = io.realpath(path);
    st = io.stat(real);
  } catch {
    return null; // absent: the caller says what that means
  }
  const allowed = owners(euid);
  if (!st.isFile()) return `${real} is not a regular file`;
  if (!allowed.includes(st.uid)) return `${real} belongs to uid ${st.uid}, not ${euid === 0 ? "root" : `root or uid ${euid}`}`;
  if ((st.mode & 0o022) !== 0) return `${real} is writable by ${(st.mode & 0o020) !== 0 ? "its group" : "other users"} (mode ${(st.mode & 0o777).toString(8)})`;
  const dir = dirname(real);
  const d = io.stat(dir);
  if (!allowed.includes(d.uid)) return `its folder ${dir} belongs to uid ${d.uid}`;
  if ((d.mode & 0o022) !== 0 && (d.mode & 0o1000) === 0) return `its folder ${dir} is writable by other users and not sticky (mode ${(d.mode & 0o7777).toString(8)})`;
  return null;
}
