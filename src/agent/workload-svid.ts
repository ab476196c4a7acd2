/**
 * Workload X.509-SVIDs, one per registration entry parented to this node (docs/server-api.md,
 * `POST /v1/svid`): the key is made here, only the CSR (carrying the entry's SPIFFE ID) leaves.
 * An answer is accepted only when its leaf certifies that key and its chain verifies against the
 * agent's current bundle as the entry's SPIFFE ID; otherwise `server_bad_answer`.
 */
import { BundleSet, SpiffeId, type Bundle } from "../spiffe/index.ts";
import { verifyX509Svid } from "../x509/verify.ts";
import { AgentError } from "./errors.ts";
import { freshKey } from "./node-svid.ts";
import { callServer, type ClientCert, type TlsTrust } from "./server-client.ts";
import { chainFromPem, chainPem, holdSvid, keyMatchesLeaf, leafHasKey, type HeldSvid } from "./svid-cache.ts";
import { checkEntryId, type StateFiles } from "./state-files.ts";
import { SvidAnswer, decodeChain, readAnswer, type Entry } from "./wire.ts";

export interface IssueContext {
  readonly apiOrigin: string;
  readonly trust: TlsTrust;
  readonly clientCert: ClientCert;
  readonly bundle: Bundle;
  readonly now: number;
  readonly random?: () => number;
  readonly signal?: AbortSignal;
}

/** Asks the server for a fresh SVID for `entry`; nothing is written. */
export async function requestSvid(entry: Entry, ctx: IssueContext): Promise<HeldSvid> {
  checkEntryId(entry.id);
  let id: SpiffeId;
  try {
    id = SpiffeId.parse(entry.spiffe_id);
  } catch (e) {
    throw new AgentError("server_bad_answer", `agent: entry ${entry.id} has SPIFFE ID ${JSON.stringify(entry.spiffe_id.slice(0, 100))}, which does not parse`, { cause: e });
  }
  const key = await freshKey(id);
  const what = `POST /v1/svid for entry ${entry.id}`;
  const body = await callServer({
    origin: ctx.apiOrigin,
    method: "POST",
    path: "/v1/svid",
    body: { entry_id: entry.id, csr: key.csr },
    trust: ctx.trust,
    clientCert: ctx.clientCert,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  });
  const answer = readAnswer(SvidAnswer, body, what);
  const chain = decodeChain(answer.svid, what);
  if (answer.entry_id !== entry.id) throw new AgentError("server_bad_answer", `agent: the answer to ${what} is for entry ${JSON.stringify(answer.entry_id.slice(0, 64))}`);
  if (!leafHasKey(chain[0]!, key.spki)) throw new AgentError("server_bad_answer", `agent: the SVID in the answer to ${what} does not carry the key the agent sent`);
  let got: string;
  try {
    got = (await verifyX509Svid(chain, BundleSet.of(ctx.bundle), { now: new Date(ctx.now) })).id.toString();
  } catch (e) {
    throw new AgentError("server_bad_answer", `agent: the SVID in the answer to ${what} does not verify against the agent's bundle`, { cause: e });
  }
  if (got !== id.toString()) throw new AgentError("server_bad_answer", `agent: the answer to ${what} gives ${got}, not ${id.toString()}`);
  return holdSvid(chain, key.keyPem, ctx.random);
}

/** Does `held` still fit `entry` (same SPIFFE ID and DNS names)? Else it is reissued at once. */
export function fitsEntry(held: HeldSvid, entry: Entry): boolean {
  const want = [...(entry.dns_names ?? [])].sort().join(",");
  return held.spiffeId === entry.spiffe_id && [...held.dnsNames].sort().join(",") === want;
}

export function writeSvid(files: StateFiles, entryId: string, svid: HeldSvid): void {
  checkEntryId(entryId);
  files.writeKey(`svids/${entryId}.key`, svid.keyPem);
  files.writePublic(`svids/${entryId}.pem`, chainPem(svid.chain));
}

export function removeSvid(files: StateFiles, entryId: string): void {
  files.remove(`svids/${entryId}.pem`);
  files.remove(`svids/${entryId}.key`);
}

/**
 * The SVIDs kept in svids/ from an earlier run. A pair that does not parse or whose key does not
 * match its certificate (a crash between the two writes) is removed and reported in `dropped`;
 * the entry then gets a new SVID at the next sync.
 */
export async function loadSvids(files: StateFiles, random?: () => number): Promise<{ svids: Map<string, HeldSvid>; dropped: string[] }> {
  const svids = new Map<string, HeldSvid>();
  const dropped: string[] = [];
  for (const id of files.svidIds()) {
    const pem = files.read(`svids/${id}.pem`);
    const key = files.read(`svids/${id}.key`);
    try {
      if (pem === null || key === null) throw new Error("half of the pair is missing");
      const chain = chainFromPem(pem);
      if (chain.length === 0 || !(await keyMatchesLeaf(key, chain[0]!))) throw new Error("key and certificate do not match");
      svids.set(id, holdSvid(chain, key, random));
    } catch {
      removeSvid(files, id);
      dropped.push(id);
    }
  }
  return { svids, dropped };
}
