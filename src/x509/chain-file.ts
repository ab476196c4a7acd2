/**
 * Certificates as operators hand them over: PEM with one or more CERTIFICATE blocks (leaf first),
 * or a single DER certificate. Other PEM blocks (a private key kept beside the chain) are skipped
 * and counted, never decoded further or echoed.
 */
import { TidegateError } from "../errors.ts";
import { decodePem, looksLikePem } from "./pem.ts";

export class ChainFileError extends TidegateError {}

export interface ChainFile {
  readonly certificates: Uint8Array[];
  /** Labels of the non-certificate blocks that were skipped (e.g. "PRIVATE KEY"). */
  readonly skipped: string[];
}

export function readChainFile(bytes: Uint8Array): ChainFile {
  if (!looksLikePem(bytes)) {
    if (bytes.length === 0) throw new ChainFileError("chain_empty", "x509: the file is empty");
    return { certificates: [bytes], skipped: [] };
  }
  const blocks = decodePem(new TextDecoder("utf-8", { fatal: false }).decode(bytes));
  const certificates = blocks.filter((b) => b.label === "CERTIFICATE").map((b) => b.der);
  const skipped = blocks.filter((b) => b.label !== "CERTIFICATE").map((b) => b.label);
  if (certificates.length === 0) {
    throw new ChainFileError("chain_no_certificate", `x509: no CERTIFICATE block (found: ${skipped.join(", ")})`);
  }
  return { certificates, skipped };
}
