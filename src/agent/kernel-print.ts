/**
 * The egress path's attestation reads each caller's start time, executable and owner from the
 * kernel (src/bpf/task-print.ts) rather than from /proc, when the kernel lets the agent load
 * tg_task_print. Either way attestation compares the same three things and fails closed the same
 * way; this only changes where they are read (docs/attestation.md, "Reading the fingerprint").
 *
 * - A kernel that refuses the program: logged once at start (`task_print_unavailable`), and
 *   attestation reads /proc for the agent's life.
 * - A call that fails later (it has not been seen to): logged once (`task_print_failed`), the
 *   printer is closed, and /proc is read from then on. The pid asked about is read from /proc too.
 */
import type { Fingerprint } from "../attest/attestation.ts";
import { BpfError } from "../bpf/errors.ts";
import { TaskPrinter } from "../bpf/task-print.ts";
import type { Logger } from "../runtime/log.ts";
import { describeError } from "./errors.ts";

export interface KernelPrint {
  /** For AttestationOptions.kernelPrint; undefined when the program could not be loaded. */
  readonly print: ((pid: number) => Fingerprint | null) | undefined;
  close(): void;
}

export async function openKernelPrint(logger: Logger): Promise<KernelPrint> {
  let printer: TaskPrinter | null;
  try {
    printer = await TaskPrinter.open();
  } catch (e) {
    if (!(e instanceof BpfError)) throw e;
    logger.warn("task_print_unavailable", { error: describeError(e), effect: "attestation reads each caller's /proc (about 25 µs more per new connection)" });
    return { print: undefined, close() {} };
  }
  const close = (): void => {
    const p = printer;
    printer = null;
    p?.close();
  };
  return {
    print: (pid) => {
      if (printer === null) return null;
      try {
        return printer.print(pid);
      } catch (e) {
        logger.warn("task_print_failed", { caller_pid: pid, error: describeError(e), effect: "attestation reads /proc from now on" });
        close();
        return null;
      }
    },
    close,
  };
}
