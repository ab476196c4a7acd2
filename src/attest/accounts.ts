/**
 * User and group names for ids, from /etc/passwd and /etc/group (passwd(5), group(5)) as the
 * files say them: the first line with an id wins, as getpwuid(3) does with the "files" source.
 * Other NSS sources (LDAP, sssd) are not consulted: an id with no line gets no name selector, as in
 * SPIRE. Each file is parsed again only when its stat (inode, size, mtime, ctime) changes, and
 * that stat is taken at most once per `recheckMs` (1 s): an account renamed is seen within it.
 */
import type { FileStat, ProcFs } from "./proc-fs.ts";

interface Parsed {
  readonly key: string;
  readonly names: ReadonlyMap<number, string>;
  checkedAt: number;
}

export interface AccountsOptions {
  readonly passwd?: string;
  readonly group?: string;
  readonly recheckMs?: number;
  readonly now?: () => number;
}

function statKey(s: FileStat): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

/** name:password:id:... lines; the first line for an id wins; malformed lines are skipped. */
export function parseIdFile(text: string): Map<number, string> {
  const names = new Map<number, string>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    const name = f[0];
    const id = f[2];
    if (name === undefined || name === "" || id === undefined || !/^[0-9]{1,10}$/.test(id)) continue;
    if (!names.has(Number(id))) names.set(Number(id), name);
  }
  return names;
}

export class Accounts {
  readonly #fs: ProcFs;
  readonly #files = new Map<string, Parsed>();

  readonly #passwd: string;
  readonly #group: string;
  readonly #recheckMs: number;
  readonly #now: () => number;

  constructor(fs: ProcFs, opts: AccountsOptions = {}) {
    this.#fs = fs;
    this.#passwd = opts.passwd ?? "/etc/passwd";
    this.#group = opts.group ?? "/etc/group";
    this.#recheckMs = opts.recheckMs ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  userName(uid: number): Promise<string | undefined> {
    return this.#name(this.#passwd, uid);
  }

  groupName(gid: number): Promise<string | undefined> {
    return this.#name(this.#group, gid);
  }

  async #name(path: string, id: number): Promise<string | undefined> {
    const now = this.#now();
    const known = this.#files.get(path);
    if (known !== undefined && now - known.checkedAt < this.#recheckMs) return known.names.get(id);
    let st: FileStat;
    try {
      st = await this.#fs.stat(path);
    } catch {
      this.#files.delete(path);
      return undefined; // no such file: no names
    }
    const key = statKey(st);
    let parsed = known;
    if (parsed?.key !== key) {
      parsed = { key, names: parseIdFile(await this.#fs.readText(path)), checkedAt: now };
      this.#files.set(path, parsed);
    }
    parsed.checkedAt = now;
    return parsed.names.get(id);
  }
}
