/**
 * The policy module's errors. Messages start with "policy: " and name the offending input (never a
 * secret value: a secret reference names the secret, and that is all the policy ever holds).
 */
import { TidegateError } from "../errors.ts";

export const POLICY_ERROR_CODES = [
  /** The policy file as a whole: not YAML, or a field that failed validation (message: file:line: path: why). */
  "policy_invalid",
  /** An IP address that is not IPv4 dotted-quad or RFC 4291 IPv6 text. */
  "policy_bad_address",
  /** An address range: bad prefix length, host bits set, or a bad address in it. */
  "policy_bad_cidr",
  /** A host name or host pattern (rules) or a server name (queries) that is not acceptable. */
  "policy_bad_host",
  /** A port or port range. */
  "policy_bad_port",
  /** An HTTP path, or a path pattern. */
  "policy_bad_path",
  /** An HTTP method. */
  "policy_bad_method",
  /** A header name or value template, or a `${secret:NAME}` reference in one. */
  "policy_bad_header",
  /** An MCP tool name. */
  "policy_bad_tool",
  /** An MCP server name (`tidegate mcp pin SERVER`) that is neither a SPIFFE ID nor a rule name (mcp-servers.ts). */
  "policy_bad_mcp_server",
  /** A query given to the engine (explain's flags): a missing or malformed field. */
  "policy_bad_query",
  /** A name the resolver could not resolve (no such name, no address, every server failed). */
  "policy_dns_failed",
  /** A DNS answer that is malformed or does not answer the question asked. */
  "policy_dns_bad_answer",
  /** The config file or its folder can be changed by someone other than root (runtime/trusted-file.ts). */
  "config_untrusted",
] as const;

export type PolicyErrorCode = (typeof POLICY_ERROR_CODES)[number];

export class PolicyError extends TidegateError<PolicyErrorCode> {}
