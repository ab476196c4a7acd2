/**
 * The verifier tests' PKI and chains: a test CA (test/helpers/test-ca.ts) for example.org, the
 * node's SVID as checkpoint signer, and a chain of every common kind of event with two
 * checkpoints. Times are fixed, around T0, inside the SVID's hour of validity.
 */
import { createTestCa, type TestCa, type TestLeaf } from "../../../test/helpers/test-ca.ts";
import { ChainBuilder, subtleSigner, type CheckpointSigner } from "./chain-builder.ts";
import { SAMPLE_EVENTS } from "./samples.ts";
import { verifyAudit, type AuditFile, type AuditState, type VerifyReport } from "./verify.ts";
import type { X509BundleSource } from "../../x509/verify.ts";

export const T0 = new Date("2026-11-26T17:00:00.000Z");
export const at = (seconds: number): Date => new Date(T0.getTime() + seconds * 1000);
export const SIGNER_PATH = "/tidegate/agent/node-1";

export interface Pki {
  readonly ca: TestCa;
  readonly leaf: TestLeaf;
  readonly signer: CheckpointSigner;
}

/** A CA for example.org valid a day from T0 - 1 h, and the node's SVID, valid T0 to T0 + 1 h. */
export async function makePki(): Promise<Pki> {
  const ca = await createTestCa({ now: new Date(T0.getTime() - 3600_000) });
  const leaf = await ca.mintLeaf(SIGNER_PATH, { now: T0, ttlSeconds: 3600 });
  return { ca, leaf, signer: subtleSigner(leaf.id.toString(), leaf.chain, leaf.privateKey) };
}

let shared: Promise<Pki> | undefined;
/** One PKI for the whole test run (minting costs a few milliseconds). */
export function pki(): Promise<Pki> {
  shared ??= makePki();
  return shared;
}

/**
 * Lines 1-5: agent_start, policy_loaded, conn_open, http_request, conn_close; 6: checkpoint;
 * 7-9: deny, tool_call, secret_changed; 10: checkpoint; then `tail` more admin events.
 */
export async function sampleChain(opts: { tail?: number; signer?: CheckpointSigner } = {}): Promise<ChainBuilder> {
  const b = new ChainBuilder({ signer: opts.signer ?? (await pki()).signer });
  await b.append("agent_start", SAMPLE_EVENTS.agent_start, at(1));
  await b.append("policy_loaded", SAMPLE_EVENTS.policy_loaded, at(2));
  await b.append("conn_open", SAMPLE_EVENTS.conn_open, at(3));
  await b.append("http_request", SAMPLE_EVENTS.http_request, at(4));
  await b.append("conn_close", SAMPLE_EVENTS.conn_close, at(5));
  await b.checkpoint(at(6));
  await b.append("deny", SAMPLE_EVENTS.deny, at(7));
  await b.append("tool_call", SAMPLE_EVENTS.tool_call, at(8));
  await b.append("secret_changed", SAMPLE_EVENTS.secret_changed, at(9));
  await b.checkpoint(at(10));
  for (let i = 0; i < (opts.tail ?? 0); i++) await b.append("admin", SAMPLE_EVENTS.admin, at(11 + i));
  return b;
}

/** `lines` as a file's content, each followed by "\n". */
export const fileText = (lines: readonly string[]): string => lines.map((l) => `${l}\n`).join("");

export async function verify(
  files: AuditFile[],
  opts: { state?: AuditState | null; bundles?: X509BundleSource | null; now?: Date } = {},
): Promise<VerifyReport> {
  const bundles = opts.bundles === undefined ? (await pki()).ca.bundle : opts.bundles;
  return verifyAudit({ files, bundles, state: opts.state ?? null, now: opts.now ?? at(3600) });
}

/** The break as [file, line, seq, code], or "ok" (with the message when it is not). */
export function breakOf(r: VerifyReport): "ok" | [string, number, number | null, string] {
  if (r.firstBreak === null) return "ok";
  const b = r.firstBreak;
  return [b.file, b.line, b.seq, b.code];
}
