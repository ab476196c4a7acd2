// `tidegate mcp tools` as a person reads it: a tool a line, names in one column.
import { describe, expect, test } from "bun:test";
import { renderPins } from "./mcp.ts";

const H1 = "a".repeat(64);
const H2 = "b".repeat(64);

describe("renderPins", () => {
  test("names padded to the longest, so the states line up; waiting ones say both hashes", () => {
    expect(renderPins("spiffe://example.org/mcp/tools", { pinned: { add: H1, delete_everything: H1, echo: H1 }, waiting: { echo: H2, new_tool: H2 }, strict: false })).toBe(
      [
        "spiffe://example.org/mcp/tools",
        `  add                pinned  ${H1}`,
        `  delete_everything  pinned  ${H1}`,
        `  echo               WAITING for approval: pinned ${H1}, now ${H2}`,
        `  new_tool           WAITING for approval: not pinned, now ${H2}`,
        "",
      ].join("\n"),
    );
  });
  test("a strict server says so; none seen says so", () => {
    expect(renderPins("s", { pinned: {}, waiting: {}, strict: true })).toBe("s (from an approved file: unnamed tools wait)\n  no tools seen yet\n");
  });
});
