/**
 * The bytes of bpf/tidegate.bpf.o: the copy embedded in a compiled binary (scripts/build.ts), or
 * the repository's file when running from source. A missing or unreadable object is an error
 * (bpf_unavailable): the caller cannot enforce anything without it.
 */
import { EMBEDDED } from "./embedded-files.ts";
import { BpfError } from "./errors.ts";

const SOURCE_PATH = new URL("../../bpf/tidegate.bpf.o", import.meta.url).pathname;

export async function tidegateObject(): Promise<Uint8Array> {
  const path = EMBEDDED?.object ?? SOURCE_PATH;
  try {
    return new Uint8Array(await Bun.file(path).arrayBuffer());
  } catch (e) {
    throw new BpfError("bpf_unavailable", "read", 0, `bpf: cannot read the eBPF object ${JSON.stringify(path)}: ${(e as Error).message}`, { cause: e });
  }
}
