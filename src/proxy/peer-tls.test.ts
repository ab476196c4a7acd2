import { describe, expect, test } from "bun:test";
import { hex } from "./peer-tls.ts";

describe("hex", () => {
  test("lowercase, two digits a byte, nothing for no bytes", () => {
    expect(hex(new Uint8Array([]))).toBe("");
    expect(hex(new Uint8Array([0, 1, 0x0f, 0x10, 0xab, 0xff]))).toBe("00010f10abff");
  });

  test("a view into a larger buffer: only its own bytes", () => {
    const all = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x01]);
    expect(hex(all.subarray(1, 4))).toBe("adbeef");
  });

  test("the same as a byte-by-byte encoding for random ids", () => {
    for (let i = 0; i < 100; i++) {
      const b = crypto.getRandomValues(new Uint8Array(16));
      expect(hex(b)).toBe([...b].map((x) => x.toString(16).padStart(2, "0")).join(""));
    }
  });
});
