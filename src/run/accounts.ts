/**
 * Users and groups for `tidegate run --user`, from /etc/passwd and /etc/group only (passwd(5),
 * group(5)), as the "files" NSS source reads them: the first line with a name or id wins. Other
 * sources (LDAP, sssd) are not consulted; a uid with no line has no supplementary groups beyond
 * its primary group. Malformed lines are skipped. The id-to-name half is shared with the unix
 * attestor (../attest/accounts.ts).
 */
import { readFileSync } from "node:fs";
import { parseIdFile } from "../attest/accounts.ts";

export interface AccountFiles {
  /** Text of /etc/passwd. */
  readonly passwd: string;
  /** Text of /etc/group. */
  readonly group: string;
}

export interface Account {
  /** null for a numeric user with no passwd line. */
  readonly name: string | null;
  readonly uid: number;
  /** The primary group; null for a numeric user with no passwd line. */
  readonly gid: number | null;
}

const ID = /^[0-9]{1,10}$/;
/** Ids glibc accepts: 0 to 2^32-2 ((uid_t)-1 means "unchanged" to the set*id calls). */
const MAX_ID = 0xfffffffe;

function parseId(text: string | undefined): number | null {
  if (text === undefined || !ID.test(text)) return null;
  const n = Number(text);
  return n <= MAX_ID ? n : null;
}

function lines(text: string): string[][] {
  return text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).map((l) => l.split(":"));
}

/**
 * The user `spec` names: a user name first, then (when all digits) a uid, as chown(1) reads it.
 * null when neither matches (a uid out of range included).
 */
export function findUser(files: AccountFiles, spec: string): Account | null {
  let byId: Account | null = null;
  const wanted = parseId(spec);
  for (const f of lines(files.passwd)) {
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (f[0] === undefined || f[0] === "" || uid === null || gid === null) continue;
    if (f[0] === spec) return { name: f[0], uid, gid };
    if (byId === null && uid === wanted) byId = { name: f[0], uid, gid };
  }
  return byId ?? (wanted === null ? null : { name: null, uid: wanted, gid: null });
}

/**
 * The gid of a group /etc/group lists, by name or by gid; null for anything else. For the run
 * group, which opens run.sock: a number with no line must not open it to whoever has that gid.
 */
export function findListedGroup(files: AccountFiles, spec: string): number | null {
  for (const f of lines(files.group)) {
    const gid = parseId(f[2]);
    if (gid !== null && (f[0] === spec || String(gid) === spec)) return gid;
  }
  return null;
}

/** The group `spec` names (a group name first, then a numeric gid), or null. */
export function findGroup(files: AccountFiles, spec: string): number | null {
  for (const f of lines(files.group)) {
    const gid = parseId(f[2]);
    if (f[0] === spec && gid !== null) return gid;
  }
  return parseId(spec);
}

/**
 * The supplementary groups initgroups(3) would give `uid` with primary group `gid`: `gid` first,
 * then every group whose member list names the user of `uid`'s first passwd line, each once.
 */
export function supplementaryGroups(files: AccountFiles, uid: number, gid: number): number[] {
  const out = [gid];
  const name = parseIdFile(files.passwd).get(uid);
  if (name === undefined) return out;
  for (const f of lines(files.group)) {
    const g = parseId(f[2]);
    if (g === null || out.includes(g)) continue;
    if ((f[3] ?? "").split(",").includes(name)) out.push(g);
  }
  return out;
}

/** /etc/passwd and /etc/group as they are now; a missing file reads as empty. */
export function readAccountFiles(paths: { passwd?: string; group?: string } = {}): AccountFiles {
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  return { passwd: read(paths.passwd ?? "/etc/passwd"), group: read(paths.group ?? "/etc/group") };
}
