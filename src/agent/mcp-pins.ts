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
 */
import { PinBook } from "../mcp/index.ts";
import type { Logger } from "../runtime/log.ts";
import { AgentError } from "./errors.ts";
import { StateFiles } from "./state-files.ts";

export const PINS_FILE = "mcp-pins.json";

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

export function writePins(stateDir: string, book: PinBook): void {
  const files = new StateFiles(stateDir);
  files.ensure();
  files.write(PINS_FILE, `${JSON.stringify(book, null, 2)}\n`, 0o600);
}

/** The agent's book: read now, written after every change. */
export function openPins(stateDir: string, logger: Logger): PinBook {
  const book = readPins(stateDir);
  let queued = false;
  book.onChange = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      try {
        writePins(stateDir, book);
      } catch (e) {
        logger.error("mcp_pins_unwritable", { file: new StateFiles(stateDir).path(PINS_FILE), error: e instanceof Error ? e.message : String(e) });
      }
    });
  };
  return book;
}
