/** X.509-SVIDs: keys, certificates, minting, CSRs and verification (src/x509). Re-exports only. */
export * from "./x509-errors.ts";
export * from "./encoding.ts";
export * from "./pem.ts";
export { webcrypto, subtle } from "./engine.ts";
export * from "./keys.ts";
export { readCertificate, parseCertificate, describeCertificate, serialHex, fingerprintSha256, keyUsageNames, KEY_USAGE, type CertInfo, type CertificateDescription, type KeyUsageName } from "./cert.ts";
export { OID, type ExtensionFields } from "./cert-ext.ts";
export { nameToText } from "./name.ts";
export * from "./mint.ts";
export * from "./csr.ts";
export * from "./verify.ts";
