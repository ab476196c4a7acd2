/**
 * The agent's MCP tool pins on disk, `<state-dir>/agent/mcp-pins.json` (0600, src/mcp/pins.ts's
 * PinBook as JSON), so a pin outlives a restart: a server that changed a tool while the agent was
 * down is still caught.
 *
 * - Every change is written (atomically: the old file or the new one, never a part) at the end of
 *   the tick it happened in, so a burst of first sights is one write.
 * - A file that cannot be read or parsed stops the agent (`mcp_pins_damaged`, naming the file):
 *   starting over would pin on first sight whatever the servers now say, which is what pinning is
 *   there to prevent. Moving the file aside is the way to start over, on purpose.
 * - A write that fails is logged (`mcp_pins_unwritable`) and retried at the next change; the pins
 *   in memory still apply.
 *
 * Beside it, `<state-dir>/agent/mcp-definitions.json` (0600) keeps the definitions behind the
 * hashes (PinBook.definitionsJSON), so `tidegate mcp tools SERVER TOOL` shows what a pinned tool
 * said after a restart too. They are for reading only, never for deciding: an entry whose text
 * does not hash to its key, or is not a JSON object, is dropped, and a file that does not parse is
 * logged (`mcp_definitions_damaged`) and replaced at the next change; the agent goes on.
 */
import { createHash } from "node:crypto";
import { MAX_DEFINITION_CHARS, PinBook } from "../mcp/index.ts";
import type { Logger } from "../runtime/log.ts";
import { AgentError } from "./errors.ts";
import { StateFiles } from "./state-files.ts";

export const PINS_FILE = "mcp-pins.json";
export const DEFINITIONS_FILE = "mcp-definitions.json";

/** The book in `<state-dir>/agent/mcp-pins.json`, empty when there is none; throws AgentError when it is damaged. */
export function readPins(stateDir: string): PinBook {
  const files = new StateFiles(stateDir);
  const text = files.read(PINS_FILE);
  if (text === null) return new PinBook();
  try {
    return PinBook.fromJSON(JSON.parse(text));
  } catch (e) {
    throw new AgentError("mcp_pins_damaged", `agent: ${JSON.stringify(files.path(PINS_FILE))} is damaged (${e instanceof Error ? e.message : String(e)}); move it aside to pin every tool again on first sight`);
  }
}

/** The definitions kept in `<state-dir>/agent/mcp-definitions.json`, those that hash to their key; throws TypeError when the file does not parse. */
export function readDefinitions(stateDir: string): Map<string, string> {
  const text = new StateFiles(stateDir).read(DEFINITIONS_FILE);
  const out = new Map<string, string>();
  if (text === null) return out;
  const data: unknown = JSON.parse(text);
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new TypeError("not an object");
  for (const [hash, def] of Object.entries(data)) {
    if (typeof def !== "string" || def.length > MAX_DEFINITION_CHARS || !/^[0-9a-f]{64}$/.test(hash)) continue;
    if (createHash("sha256").update(def).digest("hex") !== hash) continue;
    try {
      const parsed: unknown = JSON.parse(def);
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) out.set(hash, def);
    } catch {
      // not JSON: dropped
    }
  }
  return out;
}

/** The pins, with the definitions of `mcp-definitions.json` when it reads (for the CLI when no agent runs). */
export function readPinsWithDefinitions(stateDir: string): PinBook {
  const book = readPins(stateDir);
  try {
    book.restoreDefinitions(readDefinitions(stateDir));
  } catch {
    // definitions are for reading only: without them, hashes
  }
  return book;
}

export function writeDefinitions(stateDir: string, book: PinBook): void {
  const files = new StateFiles(stateDir);
  files.ensure();
  files.write(DEFINITIONS_FILE, `${JSON.stringify(book.definitionsJSON())}\n`, 0o600);
}

export function writePins(stateDir: string, book: PinBook): void {
  const files = new StateFiles(stateDir);
  files.ensure();
  files.write(PINS_FILE, `${JSON.stringify(book, null, 2)}\n`, 0o600);
}

/** `write` once at the end of the tick it is asked in, however often it is asked. */
function coalesced(write: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      write();
    });
  };
}

/** The agent's book, with its definitions: read now, each written after every change. */
export function openPins(stateDir: string, logger: Logger): PinBook {
  const book = readPins(stateDir);
  const files = new StateFiles(stateDir);
  try {
    book.restoreDefinitions(readDefinitions(stateDir));
  } catch (e) {
    logger.warn("mcp_definitions_damaged", { file: files.path(DEFINITIONS_FILE), error: e instanceof Error ? e.message : String(e), action: "starting with none: they show again once servers list their tools" });
  }
  const persist = (name: string, event: string, write: () => void) =>
    coalesced(() => {
      try {
        write();
      } catch (e) {
        logger.error(event, { file: files.path(name), error: e instanceof Error ? e.message : String(e) });
      }
    });
  book.onChange = persist(PINS_FILE, "mcp_pins_unwritable", () => writePins(stateDir, book));
  book.onDefinitionsChange = persist(DEFINITIONS_FILE, "mcp_definitions_unwritable", () => writeDefinitions(stateDir, book));
  return book;
}
