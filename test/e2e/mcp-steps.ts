/**
 * Step lists of mcp-client.ts that more than one end-to-end test runs (mcp.test.ts, mcp-stdio.test.ts).
 * A module of its own: mcp-client.ts runs its client when imported.
 */
import type { Step } from "./mcp-client.ts";

/**
 * A client that watches its tools list across two changes the test makes: it lists and calls echo
 * with `marks[0]` (its tool_call tells the test the list is in), waits for file `holds[0]`, then
 * waits for a list it fetched by itself without echo, calls echo again with `marks[1]` (refused,
 * logged), waits for `holds[1]`, and waits for a list it fetched by itself with tool `back`.
 */
export function watchedAcrossTwoChanges(marks: readonly [string, string], holds: readonly [string, string], back: string): Step[] {
  return [
    { op: "list" },
    { op: "call", name: "echo", args: { message: marks[0] } },
    { op: "hold", until: holds[0] },
    { op: "refreshed", lacks: "echo" },
    { op: "call", name: "echo", args: { message: marks[1] } },
    { op: "hold", until: holds[1] },
    { op: "refreshed", has: back },
  ];
}
