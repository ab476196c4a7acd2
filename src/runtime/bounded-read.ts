/**
 * Reading a file someone named (a config, a CA file, a bundle, a secret's file) whole, without
 * letting what it is decide how long that takes or how much memory it costs.
 *
 * Guaranteed: the file is opened with O_NONBLOCK, so a FIFO (or a device) never blocks the open,
 * and refused unless the descriptor is a regular file (`input_not_file`: a FIFO, a directory,
 * /dev/zero, a socket; after symlinks); one over `maxBytes` is refused before it is read
 * (`input_too_large`), and at most `maxBytes + 1` bytes are ever read, so a file that grows
 * while it is read is refused too. Checking the open descriptor (not the path, then opening it)
 * leaves no moment in which the path can be swapped for a FIFO.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { quote, TidegateError } from "../errors.ts";

export type BoundedReadErrorCode = "input_not_file" | "input_too_large" | "input_unreadable";

export class BoundedReadError extends TidegateError<BoundedReadErrorCode> {}

/** Configs, certificates, bundles, policy files: small text. */
export const MAX_INPUT_BYTES = 4 * 1024 * 1024;

const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

function describeErrno(code: string | undefined): string {
  return code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (code ?? "unreadable");
}

/**
 * The bytes of the regular file `path`, at most `maxBytes` of them. `what` starts each message
 * ("policy", "--from-file"), which names the path quoted (src/errors.ts `quote`), never its content.
 */
export function readRegularFile(path: string, what: string, maxBytes: number = MAX_INPUT_BYTES): Buffer {
  let fd: number;
  try {
    fd = openSync(path, FLAGS);
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new BoundedReadError("input_unreadable", `${what}: cannot read ${quote(path)}: ${describeErrno(code)}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new BoundedReadError("input_not_file", `${what}: ${quote(path)} is not a regular file`);
    if (st.size > maxBytes) throw new BoundedReadError("input_too_large", `${what}: ${quote(path)} is ${st.size} bytes, more than ${maxBytes}`);
    // Read to the end, never past maxBytes + 1: the size fstat gave may change under us.
    const chunks: Buffer[] = [];
    let got = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(64 * 1024, maxBytes + 1 - got));
      const n = readSync(fd, chunk, 0, chunk.length, got);
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      got += n;
      if (got > maxBytes) throw new BoundedReadError("input_too_large", `${what}: ${quote(path)} grew past ${maxBytes} bytes while it was read`);
    }
    return Buffer.concat(chunks, got);
  } catch (e) {
    if (e instanceof BoundedReadError) throw e;
    const code = (e as { code?: string }).code;
    throw new BoundedReadError("input_unreadable", `${what}: cannot read ${quote(path)}: ${describeErrno(code)}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/** `readRegularFile` as UTF-8 text. */
export function readRegularText(path: string, what: string, maxBytes: number = MAX_INPUT_BYTES): string {
  return readRegularFile(path, what, maxBytes).toString("utf8");
}
