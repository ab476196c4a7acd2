/**
 * SIGTERM and SIGINT while `tidegate agent` or `tidegate up` is already stopping (docs/operations.md,
 * "Stopping"). The first signal starts the stop: the drain lets connections in flight finish for up
 * to `agent.drain_timeout`. Without handlers of their own, a second signal took the default action
 * and killed the process mid-drain: no `agent_stop` event, no last checkpoint, sockets left. Now:
 * - the second ends the drain at once: what is in flight is cut and recorded (`stop_forced`), and
 *   the stop goes on as usual (audit log sealed, sockets removed);
 * - a third ends the process at once (exit 1), for a stop that hangs.
 */
export function hurryOnSecondSignal(hurry: () => void, write: (line: string) => void): { off(): void } {
  let seen = 0;
  const on = (sig: string) => () => {
    seen++;
    if (seen === 1) {
      write(`tidegate: ${sig} again: ending the connections still in flight now; a third stop signal exits at once\n`);
      hurry();
      return;
    }
    write(`tidegate: ${sig} a third time: exiting now, without finishing the stop\n`);
    process.exit(1);
  };
  const term = on("SIGTERM");
  const int = on("SIGINT");
  process.on("SIGTERM", term);
  process.on("SIGINT", int);
  return {
    off() {
      process.off("SIGTERM", term);
      process.off("SIGINT", int);
    },
  };
}
