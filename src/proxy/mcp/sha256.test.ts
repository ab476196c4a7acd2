import { expect, test } from "bun:test";
import { sha256Hex } from "../../mcp/json.ts";
import { sha256Sync } from "./sha256.ts";

test("sha256Sync agrees with WebCrypto's SHA-256 (the audit's args_sha256 must not depend on the runtime)", async () => {
  for (const t of ["", '{"a":1}', "é€😀", "x".repeat(10_000)]) expect(sha256Sync(t)).toBe(await sha256Hex(t));
});
