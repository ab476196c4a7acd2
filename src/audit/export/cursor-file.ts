/**
 * The exporter's cursor kept in a file: `{"seq":N}` with N the last seq the collector
 * acknowledged (0: nothing yet).
 *
 * Guarantees: a save replaces the file whole (a temporary file beside it, created exclusively
 * without following links, mode 0600, written and fsynced, renamed over, then the directory
 * fsynced), so a crash leaves the old cursor or the new one, never a part. A missing file loads
 * as 0. Refused (`export_bad_cursor`): a file that is not exactly an object with one non-negative
 * integer `seq`, and a save of anything else.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ExportCursor } from "./exporter.ts";
import { ExportError } from "./errors.ts";

export const CURSOR_MODE = 0o600;

export class CursorFile implements ExportCursor {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<number> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return 0;
      throw e;
    }
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch {
      o = null;
    }
    const seq = (o as { seq?: unknown } | null)?.seq;
    const only = typeof o === "object" && o !== null && !Array.isArray(o) && Object.keys(o).length === 1;
    if (!only || typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) {
      throw new ExportError("export_bad_cursor", `audit: export: the cursor file ${this.path} is not {"seq": N}`);
    }
    return seq;
  }

  async save(seq: number): Promise<void> {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new ExportError("export_bad_cursor", `audit: export: cursor ${seq} is not a non-negative integer`);
    const dir = dirname(this.path);
    const tmp = join(dir, `.${basename(this.path)}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, CURSOR_MODE);
      try {
        await fh.chmod(CURSOR_MODE);
        await fh.writeFile(`${JSON.stringify({ seq })}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw e;
    }
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}
