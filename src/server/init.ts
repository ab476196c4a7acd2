/**
 * `tidegate server init`: creates `<state-dir>/server/` (0700) with the CA (`ca/`) and the
 * datastore (`datastore.db`), and `openServerState` opens them for serving.
 *
 * Guaranteed: init refuses (server_exists) when either the datastore or the CA is already there,
 * before writing anything; nothing is ever re-initialised or overwritten. Opening refuses a state
 * directory that was never initialised (server_not_initialised) instead of creating an empty
 * datastore, and a datastore whose trust domain is not the CA's (server_state_mismatch).
 */
import { chmodSync, existsSync, mkdirSync } from "node:fs";
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

export async function initServer(opts: { places: Places; settings: ServerSettings; trustDomain: string; now?: Date }): Promise<{ paths: ServerPaths; fingerprint: string }> {
  const td = TrustDomain.parse(opts.trustDomain);
  const paths = serverPaths(opts.places);
  for (const [what, path] of [["datastore", paths.datastore], ["CA", join(paths.caDir, "ca.json")]] as const) {
    if (existsSync(path)) {
      throw new ServerStateError("server_exists", `server: a ${what} already exists at ${JSON.stringify(path)}; it is never overwritten`);
    }
  }
  try {
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    chmodSync(paths.dir, 0o700);
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
  return { paths, fingerprint: ca.activeRootFingerprint() };
}

/** The datastore and CA of an initialised state directory; the caller closes the datastore. */
export async function openServerState(opts: { places: Places; settings: ServerSettings; now: Date }): Promise<{ paths: ServerPaths; store: Datastore; ca: CaManager }> {
  const paths = serverPaths(opts.places);
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
