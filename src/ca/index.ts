/**
 * The identity server's CA (src/ca). Re-exports only.
 *
 *   const ca = await CaManager.init({ trustDomain, settings, storage: new FileCaStorage(dir), now }); // ca_exists if one is there
 *   const ca = await CaManager.load({ settings, storage, now });      // ca_missing, ca_corrupt, ca_key_permissions, ca_self_check_failed
 *   const svid = await ca.mintFromCsr({ csr, id, ttlSeconds, now });   // {der, chain: [leaf, signing CA], serial, notBefore, notAfter}
 *   const svid = await ca.mintForKey({ id, publicKey, ttlSeconds, now, dnsNames });
 *   ca.bundle(); ca.bundleSequence(); ca.status(); ca.activeRootFingerprint(); ca.nextTickAt();
 *   const events = await ca.tick(now);          // call periodically: activation, auto root rotation, half-life signing rotation, drops
 *   await ca.rotateSigning(now);                // `rotate-ca`
 *   await ca.rotateRoot(now);                   // `rotate-ca --root`: published now, activated by tick one refresh hint later
 *
 * The rotation rules are in ./model.ts, the self-check in ./authority.ts, the rejections in
 * ./errors.ts (CA_ERROR_CODES); minting also throws the csr_* and x509_* errors of src/x509.
 */
export * from "./errors.ts";
export * from "./settings.ts";
export type { PersistedCa, PersistedRoot, PersistedSigning, RootState } from "./state.ts";
export * from "./storage.ts";
export * from "./file-storage.ts";
export type { CaTestHooks, Candidate } from "./authority.ts";
export * from "./manager.ts";
