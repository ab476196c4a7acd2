// SPIFFE IDs, trust domains, matchers and trust bundles (portable core). Re-exports only;
// ./charset.ts (the character walk) stays internal except for its limits.
export { SPIFFE_ID_ERROR_CODES, SpiffeIdError, type SpiffeIdErrorCode } from "./errors.ts";
export { MAX_ID_BYTES, MAX_TRUST_DOMAIN_BYTES } from "./charset.ts";
export { TrustDomain } from "./trust-domain.ts";
export { SpiffeId } from "./id.ts";
export { type Matcher, matchAny, matchId, matchMemberOf, matchOneOf, parsePattern } from "./match.ts";
export * from "./bundle.ts";
export * from "./bundle-pem.ts";
export * from "./bundle-set.ts";
export * from "./jwks.ts";
