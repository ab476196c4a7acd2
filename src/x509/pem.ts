/**
 * PEM (RFC 7468, strict form for decoding the labels we use; whitespace between lines tolerated).
 *
 * Rejected, each with its code: no PEM block at all (`pem_none`), a BEGIN without its END or with a
 * different label (`pem_unterminated`, `pem_label_mismatch`), a body that is not base64
 * (`pem_bad_base64`), an empty body (`pem_empty`), and input over `MAX_PEM_BYTES` (`pem_too_large`).
 * Text outside blocks (openssl's "Bag Attributes", comments) is ignored, as RFC 7468 section 2 allows.
 */
import { TidegateError } from "../errors.ts";
import { fromBase64, toBase64 } from "./encoding.ts";

export class PemError extends TidegateError {}

export interface PemBlock {
  readonly label: string;
  readonly der: Uint8Array;
}

/** Enough for a large trust bundle; more is refused before any parsing work. */
export const MAX_PEM_BYTES = 4 * 1024 * 1024;

const BEGIN = /^-----BEGIN ([\x21-\x2c\x2e-\x7e](?:[- ]?[\x21-\x2c\x2e-\x7e])*)?-----$/;
const END = /^-----END ([\x21-\x2c\x2e-\x7e](?:[- ]?[\x21-\x2c\x2e-\x7e])*)?-----$/;

export function decodePem(text: string): PemBlock[] {
  if (text.length > MAX_PEM_BYTES) {
    throw new PemError("pem_too_large", `pem: input is ${text.length} bytes, more than ${MAX_PEM_BYTES}`);
  }
  const lines = text.split(/\r?\n|\r/);
  const blocks: PemBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const begin = BEGIN.exec(lines[i]!.trim());
    if (!begin) continue;
    const label = begin[1] ?? "";
    let body = "";
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j]!.trim();
      const end = END.exec(line);
      if (end) {
        if ((end[1] ?? "") !== label) {
          throw new PemError("pem_label_mismatch", `pem: block "${label}" ends with "${end[1] ?? ""}"`);
        }
        break;
      }
      if (BEGIN.test(line)) throw new PemError("pem_unterminated", `pem: block "${label}" has no END line`);
      body += line;
    }
    if (j >= lines.length) throw new PemError("pem_unterminated", `pem: block "${label}" has no END line`);
    if (body.length === 0) throw new PemError("pem_empty", `pem: block "${label}" is empty`);
    const der = fromBase64(body);
    if (der === null) throw new PemError("pem_bad_base64", `pem: block "${label}" is not valid base64`);
    blocks.push({ label, der });
    i = j;
  }
  if (blocks.length === 0) throw new PemError("pem_none", "pem: no PEM block found");
  return blocks;
}

export function encodePem(label: string, der: Uint8Array): string {
  const b64 = toBase64(der);
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += b64.slice(i, i + 64) + "\n";
  return out + `-----END ${label}-----\n`;
}

/** True when the bytes look like PEM text rather than DER (DER starts with a SEQUENCE tag 0x30). */
export function looksLikePem(bytes: Uint8Array): boolean {
  const head = new TextDecoder().decode(bytes.subarray(0, Math.min(bytes.length, 4096)));
  return head.includes("-----BEGIN ");
}

/** Certificates (DER, leaf first) as one PEM text: the form TLS stacks and chain files take. */
export function chainPem(chain: readonly Uint8Array[]): string {
  return chain.map((der) => encodePem("CERTIFICATE", der)).join("");
}
