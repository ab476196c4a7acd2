/**
 * The exporter's cursor kept in a file: `{"seq":N}` with N the last seq the collector
 * acknowledged (0: nothing yet).
 *
 * Guarantees: a save replaces the file whole (a temporary file beside it, created exclusively
 * without following links, mode 0600, written and fsynced, renamed over, then the directory
 * fsynced), so a crash leaves the old cursor or the new one, never a part. A missing file loads
 * as 0. Refused (`export_bad_cursor`): a file that is not exactly an object with one non-negative
 * integer `seq`, and a save of anything else. A save that cannot be written fails with
 * `export_cursor_unwritable` naming the file and the system's code; `checkWritable` makes and
 * removes such a temporary file, so that a caller can tell before anything is sent.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ExportCursor } from "./exporter.ts";
import { ExportError } from "./errors.ts";
import { quote } from "../../errors.ts";

const codeOf = (e: unknown): string => (e as { code?: string }).code ?? String(e);

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
    const tmp = this.#tmpPath();
    try {
      const fh = await this.#create(tmp);
      try {
        await fh.chmod(CURSOR_MODE);
        await fh.writeFile(`${JSON.stringify({ seq })}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      const d = await open(dirname(this.path), "r");
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw this.#unwritable(e);
    }
  }

  /** Throws `export_cursor_unwritable` unless a save could write here: a folder where the temporary file can be made, and no folder in the file's place. */
  async checkWritable(): Promise<void> {
    const st = await stat(this.path).catch(() => null);
    if (st?.isDirectory()) throw new ExportError("export_cursor_unwritable", `audit: export: cannot save the cursor file ${quote(this.path)}: it is a directory`);
    const tmp = this.#tmpPath();
    try {
      await (await this.#create(tmp)).close();
      await unlink(tmp);
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      throw this.#unwritable(e);
    }
  }

  #tmpPath(): string {
    return join(dirname(this.path), `.${basename(this.path)}.${randomBytes(6).toString("hex")}.tmp`);
  }

  #create(tmp: string) {
    return open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, CURSOR_MODE);
  }

  #unwritable(e: unknown): ExportError {
    const why = codeOf(e) === "ENOENT" ? `its folder ${quote(dirname(this.path))} does not exist` : codeOf(e);
    return new ExportError("export_cursor_unwritable", `audit: export: cannot save the cursor file ${quote(this.path)}: ${why}`, { cause: e });
  }
}
