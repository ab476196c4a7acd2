/**
 * Drops the compiled code of start-up once a long-running command (agent, server, `up`) is
 * serving. Start-up runs a great deal of code once: the bundle's top level, config and policy
 * parsing, the CA and the first SVIDs, the capture's loading. JavaScriptCore keeps the compiled
 * code of every function that ran for as long as the function lives, which for a bundle's
 * functions is the life of the process. Dropped, the agents of the L4 benchmark held about 8 MiB
 * less under load and paused for shorter young collections, which is what their p99 waits on
 * (docs/benchmarks.md, "Start-up code").
 *
 * `Bun.shrink()` has JavaScriptCore delete all compiled code, collect the heap fully and hand free
 * memory back. Functions compile again when next called, so what stays compiled is what runs
 * after start-up, the data path above all. It is asked for once, when the process has finished
 * starting: the work happens when JavaScript next returns to the event loop. A second drop later
 * under load was measured and not kept (the same docs section).
 *
 * Bun only (`bun:jsc`), so it sits in the runtime adapters, not the portable core.
 */
import { heapStats } from "bun:jsc";
import type { Logger } from "./log.ts";

/** Live code blocks of every kind (function, module, program, eval; linked and unlinked). */
export function liveCodeBlocks(): number {
  let n = 0;
  for (const [kind, count] of Object.entries(heapStats().objectTypeCounts)) if (kind.endsWith("CodeBlock")) n += count;
  return n;
}

export interface CodeDrop {
  codeBlocksBefore: number;
  codeBlocksAfter: number;
  rssBeforeMiB: number;
  rssAfterMiB: number;
}

const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/**
 * Asks for the drop and reports it, once it has happened, in the log (`startup_code_dropped`) and
 * in the returned promise. `component` names what finished starting (`agent`, `server`, `up`).
 */
export function dropStartupCode(logger: Logger, component: string): Promise<CodeDrop> {
  const codeBlocksBefore = liveCodeBlocks();
  const rssBefore = process.memoryUsage.rss();
  Bun.shrink();
  // The drop and its collection run when this task returns to the event loop; a timer runs after.
  return new Promise((resolve) =>
    setTimeout(() => {
      const drop: CodeDrop = { codeBlocksBefore, codeBlocksAfter: liveCodeBlocks(), rssBeforeMiB: mib(rssBefore), rssAfterMiB: mib(process.memoryUsage.rss()) };
      logger.info("startup_code_dropped", { component, code_blocks_before: drop.codeBlocksBefore, code_blocks_after: drop.codeBlocksAfter, rss_before_mib: drop.rssBeforeMiB, rss_after_mib: drop.rssAfterMiB });
      resolve(drop);
    }, 0),
  );
}
