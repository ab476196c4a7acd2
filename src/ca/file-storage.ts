/**
 * The CA on disk (docs/server-api.md: `<state-dir>/server/ca/`):
 *
 * - the directory is made 0700 (and set to 0700 on every write);
 * - `ca.json` (./state.ts: metadata and certificate PEMs) is replaced atomically: written to a
 *   0600 temporary file, fsynced, renamed over, and the directory fsynced;
 * - one `<serial>.key` per private key, PKCS#8 PEM, created 0600 with O_EXCL (never over an
 *   existing file) and O_NOFOLLOW, fsynced with its directory.
 *
 * At load a key file must be a regular file of this user with no group/other permission bits,
 * opened without following a symlink (`ca_key_permissions` otherwise); a ca.json that does not
 * parse or a key that is missing or does not import is `ca_corrupt` naming the file. Keys are
 * imported non-extractable. I/O failures while writing are `ca_storage`.
 */
import { constants } from "node:fs";
import { mkdir, open, readFile, rename, unlink, chmod } from "node:fs/promises";
import { join } from "node:path";
import { CaError } from "./errors.ts";
import { SERIAL_PATTERN, keySerials, parsePersistedCa, serializePersistedCa, type PersistedCa } from "./state.ts";
import { importStoredKey, type CaStorage, type StoredCa } from "./storage.ts";

function errno(e: unknown): string | undefined {
  return typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : undefined;
}

function storageError(what: string, e: unknown): CaError {
  return new CaError("ca_storage", `ca: cannot ${what}: ${errno(e) ?? (e instanceof Error ? e.message : String(e))}`, { cause: e });
}

export class FileCaStorage implements CaStorage {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  get stateFile(): string {
    return join(this.dir, "ca.json");
  }

  keyFile(serial: string): string {
    if (!SERIAL_PATTERN.test(serial)) throw new CaError("ca_corrupt", `ca: ${JSON.stringify(serial)} is not a certificate serial`);
    return join(this.dir, `${serial}.key`);
  }

  async load(): Promise<StoredCa | null> {
    let text: string;
    try {
      text = await readFile(this.stateFile, "utf8");
    } catch (e) {
      if (errno(e) === "ENOENT") return null;
      throw new CaError("ca_corrupt", `ca: ${this.stateFile}: unreadable (${errno(e) ?? "error"})`, { cause: e });
    }
    const state = parsePersistedCa(text, this.stateFile);
    const keys = new Map<string, CryptoKey>();
    for (const serial of keySerials(state)) keys.set(serial, await this.readKey(serial));
    return { state, keys };
  }

  async saveKey(serial: string, pkcs8Pem: string): Promise<void> {
    const path = this.keyFile(serial);
    await this.ensureDir();
    let fh;
    try {
      fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (e) {
      throw storageError(`create ${path}`, e);
    }
    try {
      await fh.writeFile(pkcs8Pem);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw storageError(`write ${path}`, e);
    }
    await fh.close();
    await this.syncDir();
  }

  async save(state: PersistedCa): Promise<void> {
    await this.ensureDir();
    const tmp = join(this.dir, `.ca.json.${crypto.randomUUID()}.tmp`);
    try {
      const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        await fh.writeFile(serializePersistedCa(state));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.stateFile);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw storageError(`write ${this.stateFile}`, e);
    }
    await this.syncDir();
  }

  async deleteKey(serial: string): Promise<void> {
    try {
      await unlink(this.keyFile(serial));
    } catch (e) {
      if (errno(e) !== "ENOENT") throw storageError(`remove ${this.keyFile(serial)}`, e);
    }
  }

  private async readKey(serial: string): Promise<CryptoKey> {
    const path = this.keyFile(serial);
    let fh;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if (errno(e) === "ENOENT") throw new CaError("ca_corrupt", `ca: ${path}: missing`, { cause: e });
      if (errno(e) === "ELOOP") throw new CaError("ca_key_permissions", `ca: ${path} is a symbolic link`, { cause: e });
      throw new CaError("ca_corrupt", `ca: ${path}: unreadable (${errno(e) ?? "error"})`, { cause: e });
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new CaError("ca_key_permissions", `ca: ${path} is not a regular file`);
      const uid = process.getuid?.();
      if (uid !== undefined && st.uid !== uid) throw new CaError("ca_key_permissions", `ca: ${path} belongs to uid ${st.uid}, not ${uid}`);
      if ((st.mode & 0o077) !== 0) {
        throw new CaError("ca_key_permissions", `ca: ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}; a key must be 0600`);
      }
      return await importStoredKey(await fh.readFile("utf8"), path);
    } finally {
      await fh.close();
    }
  }

  private async ensureDir(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await chmod(this.dir, 0o700);
    } catch (e) {
      throw storageError(`create ${this.dir}`, e);
    }
  }

  private async syncDir(): Promise<void> {
    const fh = await open(this.dir, constants.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}
