import { TidegateError } from "../errors.ts";
import { BoundedReadError, readRegularFile } from "../runtime/bounded-read.ts";
import { UsageError } from "./usage-error.ts";

export class InputFileError extends TidegateError {}

/**
 * Reads a file an operator named, at most MAX_INPUT_BYTES, a regular file only (a FIFO or
 * /dev/zero is refused, never waited on: src/runtime/bounded-read.ts); errors name the file,
 * quoted, and what it was for, never its content.
 */
export function readInputFile(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readRegularFile(path, what));
  } catch (e) {
    if (e instanceof BoundedReadError) throw new InputFileError(e.code, e.message, { cause: e.cause });
    throw e;
  }
}

/**
 * Runs `parse` on what `path` holds: an error it throws about the content (a TidegateError, not
 * a usage error) is thrown again with the same code, its message naming the file (after `flag`,
 * when the file was given as one) and ending with `hint`.
 */
export async function namingFile<T>(flag: string, path: string, parse: () => T | Promise<T>, hint = ""): Promise<T> {
  try {
    return await parse();
  } catch (e) {
    if (!(e instanceof TidegateError) || e instanceof UsageError || e instanceof InputFileError) throw e;
    throw new InputFileError(e.code, `${flag === "" ? "" : `${flag} `}${JSON.stringify(path)}: ${e.message}${hint}`, { cause: e });
  }
}
