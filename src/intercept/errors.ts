/**
 * The typed errors of src/intercept: the agent's interception CA, its leaves and the workloads'
 * trust bundle. Messages name the file or the server name, never key material.
 */
import { TidegateError } from "../errors.ts";

export type InterceptErrorCode =
  /** A server name that is neither a host name nor an IP literal. */
  | "intercept_bad_name"
  /** The CA's files could not be read or written (other than absent or not a CA: those are replaced). */
  | "intercept_ca_io"
  /** The workloads' trust bundle could not be written. */
  | "intercept_bundle_io";

export class InterceptError extends TidegateError<InterceptErrorCode> {}
