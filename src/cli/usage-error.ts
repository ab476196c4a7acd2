import { TidegateError } from "../errors.ts";

/** A mistake in how tidegate was called: printed with the verb's usage, exit code 2. */
export class UsageError extends TidegateError {
  constructor(message: string) {
    super("usage", message);
  }
}
