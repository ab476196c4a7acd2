/**
 * The typed errors of src/x509. Each rejection has a stable snake_case code (tests match on it);
 * messages are lowercase, start with the module name and name the offending, non-secret input.
 */
import { TidegateError } from "../errors.ts";

/** A certificate or key that does not parse or is not supported (`x509_malformed`, `key_*`). */
export class X509Error extends TidegateError {}

/** A PKCS#10 certificate signing request that is rejected (`csr_*`). */
export class CsrError extends TidegateError {}

/** An X.509-SVID that fails verification (`svid_*`; the full list is in verify.ts). */
export class X509SvidError extends TidegateError {}

export { quote } from "../errors.ts";
