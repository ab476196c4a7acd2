export { SecretStore, secretsDir, AGENT_RECHECK_MS, type SecretInfo, type SecretStoreOptions } from "./store.ts";
export { constantTimeEqual } from "./constant-time.ts";
export { checkSecretName, checkSecretValue, secretValueFromBytes, MAX_SECRET_BYTES } from "./value.ts";
export { readSecretInput, type SecretInputSource } from "./input.ts";
export { SecretError, SECRET_ERROR_CODES, type SecretErrorCode } from "./errors.ts";
