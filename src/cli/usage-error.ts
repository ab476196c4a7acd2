import { TidegateError } from "../errors.ts";

/** A mistake in how tidegate was called: printed with the verb's usage, exit code 2. */
export class UsageError extends TidegateError {
  /** `path`: the command words routed so far, when the mistake was found while routing (main does not know them yet). */
  constructor(
    message: string,
    readonly path?: readonly string[],
  ) {
    super("usage", message);
  }
}
