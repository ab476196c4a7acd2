/**
 * An audit chain built in memory with the real format (formatLine, sha256Hex, checkpoints signed
 * over checkpointPayload): for tests of the verifier, the sink and the exporter. Each event is
 * validated against its schema first, so what it builds is what the agent would write.
 *
 *   const b = new ChainBuilder({ signer: subtleSigner(leaf.id.toString(), leaf.chain, leaf.privateKey) });
 *   await b.append("agent_start", { version: "1.0.0", pid: 42 }, time);
 *   await b.checkpoint(later);
 *   verifyAudit({ files: [{ name: "audit.jsonl", text: b.text() }], ... });
 */
import { subtle } from "../../x509/engine.ts";
import { ECDSA_SHA256 } from "../../x509/keys.ts";
import { toArrayBuffer } from "../../x509/encoding.ts";
import { buildCheckpointFields, checkpointPayload } from "./checkpoint.ts";
import { auditError } from "./errors.ts";
import { formatLine, GENESIS_PREV, sha256Hex } from "./line.ts";
import { validateEvent, type AuditEventType } from "./schema.ts";

export interface CheckpointSigner {
  /** The SPIFFE ID of the signing SVID. */
  readonly id: string;
  /** DER: the leaf SVID first, then intermediates. */
  readonly chain: readonly Uint8Array[];
  /** The 64-byte IEEE P1363 ECDSA P-256 SHA-256 signature of `payload`. */
  sign(payload: Uint8Array): Promise<Uint8Array>;
}

/** A signer over a WebCrypto P-256 private key (WebCrypto's ECDSA output is P1363 already). */
export function subtleSigner(id: string, chain: readonly Uint8Array[], privateKey: CryptoKey): CheckpointSigner {
  return {
    id,
    chain,
    sign: async (payload) => new Uint8Array(await subtle.sign(ECDSA_SHA256, privateKey, toArrayBuffer(payload))),
  };
}

/** One chain; await each append or checkpoint before the next (each needs the previous line's hash). */
export class ChainBuilder {
  /** Every line written so far, without "\n". */
  readonly lines: string[] = [];
  /** The seq of the last line (0 before the first). */
  seq: number;
  /** The SHA-256 of the last line (GENESIS_PREV before the first). */
  head: string;
  /** Lines since the last checkpoint. */
  sinceCheckpoint = 0;
  /** The seq and hash of the last checkpoint line: what the agent keeps as its state. */
  lastCheckpoint: { seq: number; hash: string } | null = null;
  readonly #signer: CheckpointSigner | undefined;

  /** `start` continues an existing chain after its line {seq, hash}. */
  constructor(opts: { signer?: CheckpointSigner; start?: { seq: number; hash: string } } = {}) {
    this.#signer = opts.signer;
    this.seq = opts.start?.seq ?? 0;
    this.head = opts.start?.hash ?? GENESIS_PREV;
  }

  /** Appends one event (validated; AuditError `audit_bad_event` otherwise) and returns its line. */
  async append(type: AuditEventType, fields: Readonly<Record<string, unknown>>, time: Date): Promise<string> {
    validateEvent({ ...fields, type });
    return this.#push(formatLine(this.seq + 1, time, type, fields, this.head), type === "checkpoint");
  }

  /** Appends a checkpoint signed by the signer; AuditError `audit_no_signer` without one. */
  async checkpoint(time: Date): Promise<string> {
    const signer = this.#signer;
    if (signer === undefined) throw auditError("audit_no_signer", "this chain builder has no checkpoint signer");
    const seq = this.seq + 1;
    const sig = await signer.sign(checkpointPayload(seq, time, this.head, signer.id, this.sinceCheckpoint));
    const fields = buildCheckpointFields({ signer: signer.id, chain: signer.chain, sig, covers: { seq: this.seq, hash: this.head }, events: this.sinceCheckpoint });
    return this.#push(formatLine(seq, time, "checkpoint", fields, this.head), true);
  }

  /** The lines as a file's content: each followed by "\n". */
  text(from = 0, to = this.lines.length): string {
    return this.lines.slice(from, to).map((l) => `${l}\n`).join("");
  }

  async #push(line: string, isCheckpoint: boolean): Promise<string> {
    this.lines.push(line);
    this.seq += 1;
    this.head = await sha256Hex(line);
    if (isCheckpoint) {
      this.sinceCheckpoint = 0;
      this.lastCheckpoint = { seq: this.seq, hash: this.head };
    } else {
      this.sinceCheckpoint += 1;
    }
    return line;
  }
}
