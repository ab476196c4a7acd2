/**
 * One writer at a time: `set` and `rm` read, change and replace secrets.json under `<dir>/lock`,
 * so two concurrent writers cannot lose each other's change. The lock file is made whole before it
 * appears (written to a temporary name, then hard-linked to `lock`, which fails when it exists)
 * and holds "PID TOKEN". A lock whose process is gone (a writer that crashed) is removed and taken;
 * a live one is waited for, then `secret_store_busy`. Readers (the agent) take no lock: they only
 * ever see a whole file (private-file.ts).
 */
import { linkSync, readFileSync, unlinkSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { createPrivateFile } from "./private-file.ts";
import { SecretError, errnoCode } from "./errors.ts";

export const DEFAULT_LOCK_WAIT_MS = 5000;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return errnoCode(e) !== "ESRCH";
  }
}

function holder(path: string): { pid: number; text: string } | null {
  try {
    const text = readFileSync(path, "utf8");
    const pid = Number(text.split(" ")[0]);
    return { pid: Number.isSafeInteger(pid) && pid > 0 ? pid : 0, text };
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return null;
    throw new SecretError("secret_store_unreadable", `secrets: cannot read ${path}: ${errnoCode(e) ?? "error"}`);
  }
}

function tryTake(path: string, mine: string): boolean {
  const tmp = `${path}.${randomUUID()}.tmp`;
  createPrivateFile(tmp, new TextEncoder().encode(mine));
  try {
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if (errnoCode(e) === "EEXIST") return false;
    throw new SecretError("secret_write_failed", `secrets: cannot create ${path}: ${errnoCode(e) ?? "error"}`);
  } finally {
    unlinkSync(tmp);
  }
}

function removeIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if (errnoCode(e) !== "ENOENT") throw new SecretError("secret_write_failed", `secrets: cannot remove ${path}: ${errnoCode(e) ?? "error"}`);
  }
}

/** Runs `fn` holding the store's lock (the folder must exist). */
export async function withStoreLock<T>(dir: string, fn: () => T | Promise<T>, waitMs = DEFAULT_LOCK_WAIT_MS): Promise<T> {
  const path = join(dir, "lock");
  const mine = `${process.pid} ${randomUUID()}\n`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (tryTake(path, mine)) break;
    const h = holder(path);
    if (h === null) continue;
    if (h.pid === 0 || !alive(h.pid)) {
      // The holder is gone. Two writers finding the same stale lock may both remove it; the
      // window is one unlink wide and needs a crashed writer and two new ones at once.
      if (holder(path)?.text === h.text) removeIfThere(path);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new SecretError("secret_store_busy", `secrets: ${dir} is being changed by process ${h.pid} (${path}); try again`);
    }
    await Bun.sleep(20);
  }
  try {
    return await fn();
  } finally {
    if (holder(path)?.text === mine) removeIfThere(path);
  }
}
