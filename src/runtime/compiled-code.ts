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
 * after start-up, the data path above all. It is asked for when the process has finished starting
 * (and again when it did not take, dropStartupCode): the work happens when JavaScript next returns
 * to the event loop. A second drop later under load was measured and not kept (the same docs
 * section).
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
  /** How many times the drop was asked for (see dropStartupCode). */
  attempts: number;
}

const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

/** How many times the drop is asked for at most, and how long to wait before asking again. */
export const DROP_ATTEMPTS = 5;
export const DROP_RETRY_MS = 100;

/**
 * Asks for the drop and reports it, once it has happened, in the log (`startup_code_dropped`) and
 * in the returned promise. `component` names what finished starting (`agent`, `server`, `up`).
 *
 * The drop is not certain: JavaScriptCore runs it once no JavaScript is on the stack, and skips
 * the deletion if a collection is under way then (`DeleteAllCodeIfNotCollecting`); a start-up
 * that allocates a lot is often collecting. So the drop counts as done only when fewer than half
 * the code blocks are left; otherwise it is asked for again, DROP_RETRY_MS later, up to
 * DROP_ATTEMPTS times in all. The log says how many it took, and what was left after the last.
 */
export function dropStartupCode(logger: Logger, component: string, shrink: () => void = () => Bun.shrink()): Promise<CodeDrop> {
  const codeBlocksBefore = liveCodeBlocks();
  const rssBefore = process.memoryUsage.rss();
  return new Promise((resolve) => {
    let attempts = 0;
    const attempt = () => {
      attempts += 1;
      shrink();
      // The drop and its collection run when this task returns to the event loop; a timer runs after.
      setTimeout(() => {
        const codeBlocksAfter = liveCodeBlocks();
        if (codeBlocksAfter * 2 >= codeBlocksBefore && attempts < DROP_ATTEMPTS) return void setTimeout(attempt, DROP_RETRY_MS);
        const drop: CodeDrop = { codeBlocksBefore, codeBlocksAfter, rssBeforeMiB: mib(rssBefore), rssAfterMiB: mib(process.memoryUsage.rss()), attempts };
        logger.info("startup_code_dropped", { component, code_blocks_before: drop.codeBlocksBefore, code_blocks_after: drop.codeBlocksAfter, rss_before_mib: drop.rssBeforeMiB, rss_after_mib: drop.rssAfterMiB, attempts });
        resolve(drop);
      }, 0);
    };
    attempt();
  });
}
