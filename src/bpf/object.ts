/**
 * The bytes of bpf/tidegate.bpf.o and bpf/task-print.bpf.o: the copies embedded in a compiled
 * binary (scripts/build.ts), or the repository's files when running from source. A missing or
 * unreadable object is an error (bpf_unavailable): the caller cannot enforce anything without
 * the first, and reads /proc instead of the second.
 */
import { EMBEDDED } from "./embedded-files.ts";
import { BpfError } from "./errors.ts";

const SOURCE_PATH = new URL("../../bpf/tidegate.bpf.o", import.meta.url).pathname;
const TASK_PRINT_SOURCE_PATH = new URL("../../bpf/task-print.bpf.o", import.meta.url).pathname;

export async function tidegateObject(): Promise<Uint8Array> {
  return read(EMBEDDED?.object ?? SOURCE_PATH);
}

export async function taskPrintObject(): Promise<Uint8Array> {
  return read(EMBEDDED?.taskPrintObject ?? TASK_PRINT_SOURCE_PATH);
}

async function read(path: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await Bun.file(path).arrayBuffer());
  } catch (e) {
    throw new BpfError("bpf_unavailable", "read", 0, `bpf: cannot read the eBPF object ${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e });
  }
}
