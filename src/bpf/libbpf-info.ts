/**
 * Which libbpf this process would use, for `tidegate version`: its version as the library itself
 * reports it (libbpf_version_string, "v1.1"; libbpf_major/minor_version when that gives nothing)
 * and whether it is the copy embedded in the binary or the system's (a source run). When the
 * libraries cannot be loaded (not Linux on x64/arm64, a missing library) it says why instead of
 * throwing: the report never fails, and never loads anything but the libraries themselves.
 */
import { libbpfVersionSymbols, type LibbpfVersionSymbols, type NativeLibs } from "./native-libs.ts";

export type LibbpfInfo =
  | { readonly version: string; readonly source: NativeLibs["source"]; readonly unavailable: null }
  | { readonly version: null; readonly source: null; readonly unavailable: string };

/** `load` is libbpfVersionSymbols but for tests. */
export function libbpfInfo(load: () => { bpf: LibbpfVersionSymbols; source: NativeLibs["source"] } = libbpfVersionSymbols): LibbpfInfo {
  let libs: { bpf: LibbpfVersionSymbols; source: NativeLibs["source"] };
  try {
    libs = load();
  } catch (e) {
    return { version: null, source: null, unavailable: e instanceof Error ? e.message : String(e) };
  }
  const text = libs.bpf.libbpf_version_string()?.toString() ?? "";
  const version = /^v?(\d+\.\d+(\.\d+)?)$/.exec(text)?.[1] ?? `${libs.bpf.libbpf_major_version()}.${libs.bpf.libbpf_minor_version()}`;
  return { version, source: libs.source, unavailable: null };
}
