/**
 * `tidegate server init`: creates `<state-dir>/server/` (0700) with the CA (`ca/`) and the
 * datastore (`datastore.db`), and `openServerState` opens them for serving.
 *
 * Guaranteed: init refuses (server_exists) when either the datastore or the CA is already there,
 * before writing anything; nothing that was ever served is re-initialised or overwritten. The one
 * exception is an init that was cut before it finished (its marker, `init-incomplete`, is still
 * there): what it made was never served, so init makes it again, and opening refuses it
 * (server_init_incomplete). Opening refuses a state
 * directory that was never initialised (server_not_initialised) instead of creating an empty
 * datastore, and a datastore whose trust domain is not the CA's (server_state_mismatch).
 */
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TidegateError } from "../errors.ts";
import type { Places } from "../runtime/instance.ts";
import { TrustDomain } from "../spiffe/index.ts";
import { CaManager, FileCaStorage, type CaSettings } from "../ca/index.ts";
import { SqliteDatastore, type Datastore } from "./store/index.ts";
import type { ServerSettings } from "./config.ts";

export class ServerStateError extends TidegateError {}

export interface ServerPaths {
  readonly dir: string;
  readonly datastore: string;
  readonly caDir: string;
  readonly socket: string;
  readonly serverJson: string;
}

export function serverPaths(places: Pick<Places, "stateDir" | "runDir">): ServerPaths {
  const dir = join(places.stateDir, "server");
  return {
    dir,
    datastore: join(dir, "datastore.db"),
    caDir: join(dir, "ca"),
    socket: join(places.runDir, "server.sock"),
    serverJson: join(places.runDir, "server.json"),
  };
}

export function caSettingsOf(s: ServerSettings): CaSettings {
  return s.ca;
}

const TRUST_DOMAIN_KEY = "trust_domain";
/** Files SQLite keeps beside the datastore. */
const DATASTORE_SIDE_FILES = ["-wal", "-shm", "-journal"];

/**
 * The marker of an init under way: written before the CA, removed once the datastore holds the
 * trust domain. Found later, it says an init was cut (killed, power lost) between the two, and what
 * it made was never served: nothing was issued under that CA, so init makes it again.
 */
export function initMarkerPath(paths: Pick<ServerPaths, "dir">): string {
  return join(paths.dir, "init-incomplete");
}

export async function initServer(opts: { places: Places; settings: ServerSettings; trustDomain: string; now?: Date }): Promise<{ paths: ServerPaths; fingerprint: string }> {
  const td = TrustDomain.parse(opts.trustDomain);
  const paths = serverPaths(opts.places);
  const marker = initMarkerPath(paths);
  const resuming = existsSync(marker);
  if (!resuming) {
    for (const [what, path] of [["datastore", paths.datastore], ["CA", join(paths.caDir, "ca.json")]] as const) {
      if (existsSync(path)) {
        throw new ServerStateError("server_exists", `server: a ${what} already exists at ${JSON.stringify(path)}; it is never overwritten`);
      }
    }
  }
  try {
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    chmodSync(paths.dir, 0o700);
    if (resuming) {
      // What a cut init left was never served: start it again from nothing.
      rmSync(paths.caDir, { recursive: true, force: true });
      for (const f of ["", ...DATASTORE_SIDE_FILES]) rmSync(paths.datastore + f, { force: true });
    }
    writeFileSync(marker, `${td.name}\n`, { mode: 0o600 });
  } catch (cause) {
    throw new ServerStateError("server_state_io", `server: cannot create ${JSON.stringify(paths.dir)}: ${(cause as Error).message}`, { cause });
  }
  const now = opts.now ?? new Date();
  const ca = await CaManager.init({ trustDomain: td, settings: caSettingsOf(opts.settings), storage: new FileCaStorage(paths.caDir), now });
  const store = await SqliteDatastore.open(paths.datastore);
  try {
    await store.setState(TRUST_DOMAIN_KEY, td.name);
  } finally {
    await store.close();
  }
  rmSync(marker, { force: true });
  return { paths, fingerprint: ca.activeRootFingerprint() };
}

/** True when the state folder holds what a cut init left: `initServer` must run again. */
export function initIncomplete(places: Pick<Places, "stateDir" | "runDir">): boolean {
  return existsSync(initMarkerPath(serverPaths(places)));
}

/** The datastore and CA of an initialised state directory; the caller closes the datastore. */
export async function openServerState(opts: { places: Places; settings: ServerSettings; now: Date }): Promise<{ paths: ServerPaths; store: Datastore; ca: CaManager }> {
  const paths = serverPaths(opts.places);
  if (existsSync(initMarkerPath(paths))) {
    throw new ServerStateError("server_init_incomplete", `server: the init in ${JSON.stringify(paths.dir)} was cut before it finished (${JSON.stringify(initMarkerPath(paths))} is there); run 'tidegate server init --trust-domain TD' again`);
  }
  if (!existsSync(paths.datastore)) {
    throw new ServerStateError("server_not_initialised", `server: no datastore at ${JSON.stringify(paths.datastore)}; run 'tidegate server init --trust-domain TD' first`);
  }
  const store = await SqliteDatastore.open(paths.datastore);
  try {
    const ca = await CaManager.load({ settings: caSettingsOf(opts.settings), storage: new FileCaStorage(paths.caDir), now: opts.now });
    const stored = await store.getState(TRUST_DOMAIN_KEY);
    if (stored !== null && stored !== ca.trustDomain.name) {
      throw new ServerStateError("server_state_mismatch", `server: the datastore belongs to trust domain ${JSON.stringify(stored)}, the CA to ${JSON.stringify(ca.trustDomain.name)}`);
    }
    if (stored === null) await store.setState(TRUST_DOMAIN_KEY, ca.trustDomain.name);
    return { paths, store, ca };
  } catch (e) {
    await store.close();
    throw e;
  }
}
