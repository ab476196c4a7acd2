// The node agent's identity part (docs/server-api.md, "Agent"). Re-exports only.
export { startAgent, DEFAULT_SYNC_INTERVAL_MS, DEFAULT_RETRY_MAX_MS, type StartAgentOptions, type RunningAgent } from "./agent.ts";
export { AgentCore, type CoreOptions } from "./agent-core.ts";
export { bootstrap, loadIdentity, type AgentIdentity, type BootstrapOptions } from "./bootstrap.ts";
export { statusOf, type AgentStatus, type SvidStatus } from "./health.ts";
export { AgentError, ServerError, describeError } from "./errors.ts";
export { Backoff } from "./backoff.ts";
export { rotationTime } from "./rotation.ts";
export { parseFingerprint } from "./trust.ts";
export { StateFiles, type AgentJson } from "./state-files.ts";
