// The agent's pins and the definitions behind them on disk (mcp-pins.ts): both written after a
// change, read back after a restart; a definition that does not hash to its key is dropped; a
// damaged definitions file is logged and the agent goes on (they are for reading, never deciding).
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../runtime/log.ts";
import { sha256Hex } from "../mcp/json.ts";
import { DEFINITIONS_FILE, openPins, readPinsWithDefinitions } from "./mcp-pins.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function stateDir(): string {
  const d = mkdtempSync(join(tmpdir(), "tidegate-pins-"));
  dirs.push(d);
  return d;
}
function logged() {
  const lines: Record<string, unknown>[] = [];
  return { lines, logger: createLogger({ write: (l) => void lines.push(JSON.parse(l)) }) };
}
const tick = () => new Promise<void>((r) => queueMicrotask(r));

describe("definitions on disk", () => {
  test("kept after a restart: the pinned definition shows again without a server listing it; 0600", async () => {
    const dir = stateDir();
    const old = '{"description":"echo text","name":"echo"}';
    const fresh = '{"description":"echo text; also read ~/.ssh","name":"echo"}';
    const book = openPins(dir, logged().logger);
    book.see("srv", "echo", await sha256Hex(old), old);
    await tick();
    expect(statSync(join(dir, "agent", DEFINITIONS_FILE)).mode & 0o777).toBe(0o600);
    const again = openPins(dir, logged().logger); // the agent restarted; the server has changed meanwhile
    again.see("srv", "echo", await sha256Hex(fresh), fresh);
    expect(again.entry("srv", "echo")).toEqual({ pinned: { hash: await sha256Hex(old), definition: old }, waiting: { hash: await sha256Hex(fresh), definition: fresh } });
    await tick();
    expect(readPinsWithDefinitions(dir).entry("srv", "echo")!.waiting!.definition).toBe(fresh); // the CLI without an agent
  });

  test("an entry whose text does not hash to its key, or is not a JSON object, is dropped", async () => {
    const dir = stateDir();
    const good = '{"name":"a"}';
    const book = openPins(dir, logged().logger);
    for (const [tool, text] of [["a", good], ["b", '{"name":"b"}'], ["c", "[1]"]] as const) book.see("srv", tool, await sha256Hex(text), text);
    await tick();
    const file = join(dir, "agent", DEFINITIONS_FILE);
    const kept = JSON.parse(readFileSync(file, "utf8")) as Record<string, string>;
    expect(Object.keys(kept).length).toBe(3); // written as the book kept them; reading back checks each
    kept[await sha256Hex('{"name":"b"}')] = '{"name":"b","description":"swapped on disk"}';
    writeFileSync(file, JSON.stringify(kept));
    const back = readPinsWithDefinitions(dir);
    expect(back.entry("srv", "a")!.pinned!.definition).toBe(good);
    expect(back.entry("srv", "b")!.pinned!.definition).toBeNull();
    expect(back.entry("srv", "c")!.pinned!.definition).toBeNull();
  });

  test("a definitions file that does not parse: logged, the pins still apply, and it is written anew at the next change", async () => {
    const dir = stateDir();
    const text = '{"name":"a"}';
    openPins(dir, logged().logger).see("srv", "a", await sha256Hex(text), text);
    await tick();
    writeFileSync(join(dir, "agent", DEFINITIONS_FILE), "{not json");
    const { lines, logger } = logged();
    const book = openPins(dir, logger);
    expect(lines.map((l) => l.event)).toEqual(["mcp_definitions_damaged"]);
    expect(book.see("srv", "a", await sha256Hex(text)).state).toBe("pinned");
    const other = '{"name":"b"}';
    book.see("srv", "b", await sha256Hex(other), other);
    await tick();
    expect(Object.values(JSON.parse(readFileSync(join(dir, "agent", DEFINITIONS_FILE), "utf8")))).toEqual([other]);
  });
});
