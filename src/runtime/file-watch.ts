/**
 * Calls `onChange` (debounced by `delayMs`) whenever the file at `path` is written in place or
 * replaced. The folder is watched, not the file: an editor or a config tool that saves by writing
 * a new file and renaming it over the old one replaces the inode, and a watch on the file itself
 * would hear that once and then watch the old inode forever. The folder must exist; throws
 * otherwise (the caller says what it falls back to).
 */
import { watch } from "node:fs";
import { basename, dirname } from "node:path";

export interface FileWatch {
  close(): void;
}

export function watchFile(path: string, onChange: () => void, delayMs = 200): FileWatch {
  const name = basename(path);
  let timer: ReturnType<typeof setTimeout> | null = null;
  const watcher = watch(dirname(path), (_event, file) => {
    // Some platforms do not name the file; then any change in the folder counts.
    if (file !== null && file !== undefined && String(file) !== name) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, delayMs);
  });
  return {
    close() {
      watcher.close();
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
