// The admin events of `tidegate mcp approve` and `mcp pin --from-file` (enforcer.ts): a server
// may have 1,024 tools of 128 characters, so their names, listed whole, would pass the 65,536
// characters of an event's text field; the line would then fail its schema and `audit verify`
// would stop there for good. The list is cut, and says how many it left out.
import { describe, expect, test } from "bun:test";
import { validateEvent } from "../audit/format/index.ts";
import { PinBook } from "../mcp/index.ts";
import { Enforcer, type EnforcerOptions } from "./enforcer.ts";

const SERVER = "spiffe://example.org/mcp/tools";

function enforcerWith(pins: PinBook, events: Record<string, unknown>[]): Enforcer {
  const o = { audit: { emit: (type: string, fields: Record<string, unknown>) => void events.push({ type, ...fields }) } } as unknown as EnforcerOptions;
  const none = undefined as never;
  return new Enforcer(none, none, none, none, none, null, pins, none, o, undefined, none, () => 0);
}

const names = Array.from({ length: 1024 }, (_, i) => `${String(i).padStart(4, "0")}${"t".repeat(124)}`);

describe("admin events of MCP pins", () => {
  test("approving every waiting tool of a server with 1,024 long names: an event verify accepts, naming how many", () => {
    const pins = new PinBook();
    for (const t of names) pins.see(SERVER, t, "a".repeat(64)); // pinned on first sight
    for (const t of names) pins.see(SERVER, t, "b".repeat(64)); // each changed: waiting
    const events: Record<string, unknown>[] = [];
    const e = enforcerWith(pins, events);
    expect(e.approveTools(SERVER)).toHaveLength(1024);
    e.pinTools(SERVER, new Map(names.map((t) => [t, "c".repeat(64)])));
    expect(events).toHaveLength(2);
    for (const ev of events) {
      expect(() => validateEvent(ev)).not.toThrow();
      expect(String(ev.detail)).toStartWith(`${SERVER}: ${names[0]}, ${names[1]}`);
      expect(String(ev.detail)).toMatch(/, and \d+ more \(1024 in all\)/);
    }
  });
});
