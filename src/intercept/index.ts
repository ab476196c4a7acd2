/** The agent's interception CA, its leaves and the workloads' trust bundle (src/intercept). Re-exports only. */
export { InterceptError, type InterceptErrorCode } from "./errors.ts";
export { InterceptionCa, leafSubject, LEAF_TTL_SECONDS, DEFAULT_MAX_LEAVES, type InterceptLeaf, type InterceptionCaOptions, type LeafSubject } from "./ca.ts";
export { CA_TTL_SECONDS, CA_RENEW_BEFORE_MS, caCommonName, type CaOrigin } from "./ca-files.ts";
export { WorkloadTrustBundle, bundlePathIn, BUNDLE_FILE, SYSTEM_ROOTS } from "./trust-bundle.ts";
export { openInterception, type Interception, type InterceptionOptions } from "./interception.ts";
