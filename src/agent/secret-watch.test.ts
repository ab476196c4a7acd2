// secret_changed events from changes to a real secret store on disk, made as `tidegate secret`
// makes them (another SecretStore object, as another process would).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryAudit } from "../audit/sink/memory-audit.ts";
import { SecretStore, secretsDir } from "../secrets/index.ts";
import { SecretWatch } from "./secret-watch.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-test-secret-watch-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("SecretWatch", () => {
  test("set, replaced and removed secrets each give one event naming the secret, never its value", async () => {
    let t = Date.parse("2026-01-01T00:00:00Z");
    const cli = () => SecretStore.open(secretsDir(dir), { now: () => new Date((t += 1000)) });
    await cli().set("before_start", "value-before-start");
    const audit = memoryAudit();
    const watch = new SecretWatch(dir, audit);
    watch.check();
    expect(audit.events).toEqual([]); // what was there at start is no change
    await cli().set("api_token", "value-one");
    watch.check();
    await cli().set("api_token", "value-two");
    await cli().remove("before_start");
    watch.check();
    watch.check();
    expect(audit.events.map((e) => [e.name, e.change])).toEqual([
      ["api_token", "set"],
      ["api_token", "set"],
      ["before_start", "removed"],
    ]);
    expect(JSON.stringify(audit.events)).not.toMatch(/value-/);
  });
});
