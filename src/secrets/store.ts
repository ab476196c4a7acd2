/**
 * The secret store, `<state-dir>/secrets/` (docs/secrets.md):
 *
 *   secrets/        0700
 *     key           0600  32 random bytes, made by the first `set`
 *     secrets.json  0600  each value sealed with AES-256-GCM under `key` (format.ts, cipher.ts)
 *     lock                while a writer changes secrets.json (lock.ts)
 *
 * Readers (the agent) call `get`, which checks secrets.json's identity (device, inode, size, mtime,
 * ctime) and re-reads the file when it changed; values are decrypted on first use and kept in
 * memory until the file changes. The check runs on every call, or at most once per `recheckMs`
 * with `invalidate()` forcing the next one (the agent: `tidegate secret set|rm` tells it over
 * agent.sock, so a change still takes effect on the next request, and the stat(2) per request,
 * about a tenth of the intercepting hop's CPU, is gone; docs/secrets.md).
 * A file that fails to parse or a value that fails to open throws on every `get` until it is
 * fixed: nothing is served from an older reading of a file that has since changed.
 *
 * Writers (`tidegate secret`) take the lock, re-read the file, and replace it whole. `set` refuses
 * to add to a store whose other values do not open with the key (another key, or tampering), so
 * a store never mixes keys; `rm` needs no key.
 */
import type { KeyObject } from "node:crypto";
import { join } from "node:path";
import { importKey, newKeyBytes, seal, unseal } from "./cipher.ts";
import { parseSecretsFile, serializeSecretsFile, type SealedEntry } from "./format.ts";
import { withStoreLock, DEFAULT_LOCK_WAIT_MS } from "./lock.ts";
import { createPrivateFile, ensureStoreDir, fileIdentity, nodeFileOps, readPrivateFile, writeFileAtomic, type FileOps } from "./private-file.ts";
import { checkSecretName, checkSecretValue } from "./value.ts";
import { SecretError } from "./errors.ts";

export interface SecretStoreOptions {
  /** The clock for `changed_at`. */
  readonly now?: () => Date;
  /** The write calls (tests make one fail). */
  readonly fileOps?: FileOps;
  /** How long a writer waits for another one's lock. */
  readonly lockWaitMs?: number;
  /** Readers: look at the file's identity at most once per this many ms (0, the default: on every call); `invalidate()` forces the next look. */
  readonly recheckMs?: number;
  /** The clock of `recheckMs`, in ms. */
  readonly clockMs?: () => number;
}

export interface SecretInfo {
  readonly name: string;
  /** ISO 8601 UTC. */
  readonly changedAt: string;
}

/** The store folder of a state folder. */
export function secretsDir(stateDir: string): string {
  return join(stateDir, "secrets");
}

const FILE = "secrets.json";

/**
 * The agent's store looks at secrets.json's identity at most this often (a stat(2) per request was
 * about a tenth of the intercepting hop's CPU); `tidegate secret set|rm` tells the agent at once,
 * so only a change made some other way (a restored backup) waits for it. docs/secrets.md.
 */
export const AGENT_RECHECK_MS = 1000;

export class SecretStore {
  readonly dir: string;
  readonly file: string;
  readonly keyFile: string;
  private readonly now: () => Date;
  private readonly ops: FileOps;
  private readonly lockWaitMs: number;
  private readonly recheckMs: number;
  private readonly clockMs: () => number;
  /** When the file's identity was last looked at (clockMs); null: look on the next call. */
  private checkedAt: number | null = null;
  /** The last reading of secrets.json; identity null: the file did not exist. */
  private loaded: { identity: string | null; entries: ReadonlyMap<string, SealedEntry> } = { identity: null, entries: new Map() };
  private key: KeyObject | null = null;
  private readonly values = new Map<string, string>();

  private constructor(dir: string, opts: SecretStoreOptions) {
    this.dir = dir;
    this.file = join(dir, FILE);
    this.keyFile = join(dir, "key");
    this.now = opts.now ?? (() => new Date());
    this.ops = opts.fileOps ?? nodeFileOps;
    this.lockWaitMs = opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS;
    this.recheckMs = opts.recheckMs ?? 0;
    this.clockMs = opts.clockMs ?? (() => performance.now());
  }

  /** The next reader call looks at the file again, whatever `recheckMs` says (a writer changed it). */
  invalidate(): void {
    this.checkedAt = null;
  }

  /** The store in `dir` (`secretsDir(stateDir)`), read once now: throws when its file is bad. A missing folder is an empty store. */
  static open(dir: string, opts: SecretStoreOptions = {}): SecretStore {
    const store = new SecretStore(dir, opts);
    store.refresh();
    return store;
  }

  /** The value of `name`, or null when the store has none by that name. */
  get(name: string): string | null {
    checkSecretName(name);
    const entries = this.refresh();
    const entry = entries.get(name);
    if (entry === undefined) return null;
    const known = this.values.get(name);
    if (known !== undefined) return known;
    const value = checkSecretValue(name, unseal(this.currentKey(entries.size), name, entry, this.file));
    this.values.set(name, value);
    return value;
  }

  /** The names held, sorted. */
  names(): string[] {
    return [...this.refresh().keys()].sort();
  }

  list(): SecretInfo[] {
    const entries = this.refresh();
    return this.names().map((name) => ({ name, changedAt: entries.get(name)!.changedAt }));
  }

  /** Stores `value` under `name`, creating the key and the folder when needed. */
  async set(name: string, value: string): Promise<"created" | "replaced"> {
    checkSecretName(name);
    checkSecretValue(name, value);
    ensureStoreDir(this.dir);
    return withStoreLock(
      this.dir,
      () => {
        const entries = new Map(this.readNow());
        let keyRead = readPrivateFile(this.keyFile, "a key file");
        if (keyRead === null) {
          if (entries.size > 0) throw this.keyMissing(entries.size);
          const bytes = newKeyBytes();
          createPrivateFile(this.keyFile, bytes, this.ops);
          keyRead = { bytes, identity: "" };
        }
        const key = importKey(keyRead.bytes, this.keyFile);
        for (const [other, entry] of entries) if (other !== name) unseal(key, other, entry, this.file);
        const replaced = entries.has(name);
        entries.set(name, seal(key, name, value, this.now().toISOString()));
        writeFileAtomic(this.dir, FILE, new TextEncoder().encode(serializeSecretsFile(entries)), this.ops);
        this.invalidate();
        return replaced ? "replaced" : "created";
      },
      this.lockWaitMs,
    );
  }

  /** Removes `name`; false when the store did not hold it. */
  async remove(name: string): Promise<boolean> {
    checkSecretName(name);
    if (fileIdentity(this.file) === null) return false;
    return withStoreLock(
      this.dir,
      () => {
        const entries = new Map(this.readNow());
        if (!entries.delete(name)) return false;
        writeFileAtomic(this.dir, FILE, new TextEncoder().encode(serializeSecretsFile(entries)), this.ops);
        this.invalidate();
        return true;
      },
      this.lockWaitMs,
    );
  }

  private readNow(): ReadonlyMap<string, SealedEntry> {
    const read = readPrivateFile(this.file, "the secrets file");
    return read === null ? new Map() : parseSecretsFile(new TextDecoder().decode(read.bytes), this.file);
  }

  /** The current entries, re-read when the file changed since the last reading. */
  private refresh(): ReadonlyMap<string, SealedEntry> {
    let t: number | null = null;
    if (this.recheckMs > 0) {
      t = this.clockMs();
      if (this.checkedAt !== null && t - this.checkedAt < this.recheckMs && t >= this.checkedAt) return this.loaded.entries;
      // a look that throws leaves checkedAt null: the next call looks again (nothing served from an older reading)
      this.checkedAt = null;
    }
    const entries = this.look();
    if (t !== null) this.checkedAt = t;
    return entries;
  }

  private look(): ReadonlyMap<string, SealedEntry> {
    const identity = fileIdentity(this.file);
    if (identity === this.loaded.identity) return this.loaded.entries;
    const read = readPrivateFile(this.file, "the secrets file");
    const entries = read === null ? new Map<string, SealedEntry>() : parseSecretsFile(new TextDecoder().decode(read.bytes), this.file);
    this.loaded = { identity: read === null ? null : read.identity, entries };
    this.key = null;
    this.values.clear();
    return entries;
  }

  private currentKey(count: number): KeyObject {
    if (this.key !== null) return this.key;
    const read = readPrivateFile(this.keyFile, "a key file");
    if (read === null) throw this.keyMissing(count);
    this.key = importKey(read.bytes, this.keyFile);
    return this.key;
  }

  private keyMissing(count: number): SecretError {
    return new SecretError(
      "secret_key_missing",
      `secrets: ${this.keyFile} is missing but ${this.file} holds ${count} secret${count === 1 ? "" : "s"} sealed with it (restore the key file, or remove them with 'tidegate secret rm' and set them again)`,
    );
  }
}
