import { describe, expect, test } from "bun:test";
import { libbpfInfo } from "./libbpf-info.ts";
import { BpfError } from "./errors.ts";
import type { NativeLibs } from "./native-libs.ts";

const fake = (version: string | null, source: NativeLibs["source"] = "embedded") =>
  () => ({ source, bpf: { libbpf_version_string: () => version, libbpf_major_version: () => 1, libbpf_minor_version: () => 3 } }) as unknown as Pick<NativeLibs, "bpf" | "source">;

describe("libbpfInfo", () => {
  test("the version libbpf reports, without its v, and where the library came from", () => {
    expect(libbpfInfo(fake("v1.1"))).toEqual({ version: "1.1", source: "embedded", unavailable: null });
    expect(libbpfInfo(fake("v1.4.7", "system"))).toEqual({ version: "1.4.7", source: "system", unavailable: null });
  });

  test("major.minor when the version string says nothing usable", () => {
    expect(libbpfInfo(fake(null)).version).toBe("1.3");
    expect(libbpfInfo(fake("garbage")).version).toBe("1.3");
  });

  test("a library that cannot be loaded is reported with why, not thrown", () => {
    const info = libbpfInfo(() => {
      throw new BpfError("bpf_unavailable", "dlopen", 0, "bpf: eBPF needs linux on x64 or arm64, not darwin/arm64");
    });
    expect(info).toEqual({ version: null, source: null, unavailable: "bpf: eBPF needs linux on x64 or arm64, not darwin/arm64" });
  });

  test.skipIf(process.platform !== "linux")("from source, the system's libbpf.so.1 answers with a 1.x version", () => {
    const info = libbpfInfo();
    if (info.unavailable !== null) throw new Error(`libbpf did not load here: ${info.unavailable}`);
    expect(info.version).toMatch(/^1\.\d+(\.\d+)?$/);
    expect(info.source).toBe("system");
  });
});
