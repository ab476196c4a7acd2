import { readFileSync, statSync } from "node:fs";
import { TidegateError } from "../errors.ts";
import { UsageError } from "./usage-error.ts";

export class InputFileError extends TidegateError {}

/** Certificates, bundles and configs are small: anything larger is refused before it is read. */
export const MAX_INPUT_BYTES = 4 * 1024 * 1024;

/** Reads a file an operator named; errors name the file and what it was for, never its content. */
export function readInputFile(path: string, what: string): Uint8Array {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new InputFileError("input_not_file", `${what}: ${JSON.stringify(path)} is not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof InputFileError) throw e;
    const code = (e as { code?: string }).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (code ?? "unreadable");
    throw new InputFileError("input_unreadable", `${what}: cannot read ${JSON.stringify(path)}: ${why}`);
  }
  if (size > MAX_INPUT_BYTES) {
    throw new InputFileError("input_too_large", `${what}: ${JSON.stringify(path)} is ${size} bytes, more than ${MAX_INPUT_BYTES}`);
  }
  return new Uint8Array(readFileSync(path));
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
