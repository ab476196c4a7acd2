/**
 * Where the CA keeps its state: ca.json-like metadata with certificates (./state.ts) and one
 * private key per certificate serial. FileCaStorage (./file-storage.ts) is the real one;
 * MemoryCaStorage here is for tests of the CA and of the server, and goes through the same
 * parsing and key import as the file one.
 *
 * The CaManager writes a new key with `saveKey` before the state that references it (a crash in
 * between leaves an unreferenced key, never a state without its key) and deletes keys only after
 * a saved state no longer references them.
 */
import { importPkcs8 } from "../x509/keys.ts";
import { CaError } from "./errors.ts";
import { keySerials, parsePersistedCa, serializePersistedCa, type PersistedCa } from "./state.ts";

export interface StoredCa {
  readonly state: PersistedCa;
  /** Serial to private key, imported non-extractable, for every serial of `keySerials(state)`. */
  readonly keys: ReadonlyMap<string, CryptoKey>;
}

export interface CaStorage {
  /** The stored CA, or null when none was ever saved. Throws `ca_corrupt` / `ca_key_permissions`. */
  load(): Promise<StoredCa | null>;
  /** Stores a new key (PKCS#8 PEM) under `serial`; never replaces an existing one (`ca_storage`). */
  saveKey(serial: string, pkcs8Pem: string): Promise<void>;
  /** Replaces the state atomically. */
  save(state: PersistedCa): Promise<void>;
  /** Removes a key no saved state references any more; a missing key is not an error. */
  deleteKey(serial: string): Promise<void>;
}

/** Imports a stored key non-extractable, or throws `ca_corrupt` naming `file`. */
export async function importStoredKey(pem: string, file: string): Promise<CryptoKey> {
  try {
    return await importPkcs8(pem, { extractable: false });
  } catch (e) {
    throw new CaError("ca_corrupt", `ca: ${file}: not an EC P-256 PKCS#8 private key`, { cause: e });
  }
}

/** In memory, for tests: the same text round trip and checks as the files. */
export class MemoryCaStorage implements CaStorage {
  text: string | null = null;
  readonly keyPems = new Map<string, string>();

  async load(): Promise<StoredCa | null> {
    if (this.text === null) return null;
    const state = parsePersistedCa(this.text, "ca.json");
    const keys = new Map<string, CryptoKey>();
    for (const serial of keySerials(state)) {
      const pem = this.keyPems.get(serial);
      if (pem === undefined) throw new CaError("ca_corrupt", `ca: ${serial}.key: missing`);
      keys.set(serial, await importStoredKey(pem, `${serial}.key`));
    }
    return { state, keys };
  }

  async saveKey(serial: string, pkcs8Pem: string): Promise<void> {
    if (this.keyPems.has(serial)) throw new CaError("ca_storage", `ca: ${serial}.key already exists`);
    this.keyPems.set(serial, pkcs8Pem);
  }

  async save(state: PersistedCa): Promise<void> {
    this.text = serializePersistedCa(state);
  }

  async deleteKey(serial: string): Promise<void> {
    this.keyPems.delete(serial);
  }
}
