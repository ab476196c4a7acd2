/**
 * Checkpoints (docs/audit.md, "Checkpoints"): a chained line of type `checkpoint` whose fields
 * are, in this order, `signer` (the SPIFFE ID of the signing SVID), `alg` ("ES256"), `covers`
 * ({seq, hash} of the line just before it: its own seq - 1 and prev), `events` (lines since the
 * previous checkpoint, itself excluded), `chain` (base64 DER, the leaf SVID first, then
 * intermediates) and `sig` (base64url of the 64-byte IEEE P1363 r||s ECDSA P-256 SHA-256
 * signature over checkpointPayload).
 *
 * The signed bytes are the UTF-8 of
 *   "tidegate-audit-checkpoint-v1\n" + seq + "\n" + time + "\n" + prev + "\n" + signer + "\n" + events
 * with seq and events in decimal, time the line's toISOString() text and prev its prev. The
 * checkpoint's own line is thus bound to its place in the chain (seq, prev), its time and its
 * count; its remaining fields are checked against those (covers) or against the bundle (chain).
 */
import { toBase64, toBase64Url } from "../../x509/encoding.ts";

export const CHECKPOINT_CONTEXT = "tidegate-audit-checkpoint-v1";
export const CHECKPOINT_ALG = "ES256";

const encoder = new TextEncoder();

/** The bytes a checkpoint's signature covers. `time` is a Date or its toISOString() text. */
export function checkpointPayload(seq: number, time: Date | string, prev: string, signer: string, events: number): Uint8Array {
  const t = typeof time === "string" ? time : time.toISOString();
  return encoder.encode(`${CHECKPOINT_CONTEXT}\n${seq}\n${t}\n${prev}\n${signer}\n${events}`);
}

export type CheckpointFields = {
  readonly signer: string;
  readonly alg: typeof CHECKPOINT_ALG;
  readonly covers: { readonly seq: number; readonly hash: string };
  readonly events: number;
  readonly chain: string[];
  readonly sig: string;
};

/** The checkpoint's fields in their order, for formatLine(seq, time, "checkpoint", fields, prev). */
export function buildCheckpointFields(input: {
  signer: string;
  chain: readonly Uint8Array[];
  sig: Uint8Array;
  covers: { seq: number; hash: string };
  events: number;
}): CheckpointFields {
  return {
    signer: input.signer,
    alg: CHECKPOINT_ALG,
    covers: { seq: input.covers.seq, hash: input.covers.hash },
    events: input.events,
    chain: input.chain.map(toBase64),
    sig: toBase64Url(input.sig),
  };
}
