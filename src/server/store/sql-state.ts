/** The server's small key/value state (CA rotation times and the like) in SQLite. */
import type { SqlConnection } from "./connection.ts";
import { anyText, text } from "./validate.ts";

export function getState(db: SqlConnection, key: string): string | null {
  const r = db.query("SELECT value FROM server_state WHERE key = $key").get({ key }) as { value: string } | null;
  return r === null ? null : r.value;
}

export function setState(db: SqlConnection, key: string, value: string): void {
  db.query("INSERT OR REPLACE INTO server_state (key, value) VALUES ($key, $value)").run({
    key: text(key, "state key", 255),
    value: anyText(value, "state value", true),
  });
}
