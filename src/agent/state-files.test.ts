import { afterEach, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { StateFiles, checkEntryId } from "./state-files.ts";
import { tempPlaces } from "./test-support.ts";

const t = tempPlaces();
afterEach(() => t.cleanup());

describe("StateFiles", () => {
  test("agent/ and svids/ are 0700, even when they existed with a looser mode", () => {
    mkdirSync(join(t.places.stateDir, "agent"), { recursive: true, mode: 0o755 });
    chmodSync(join(t.places.stateDir, "agent"), 0o755);
    const f = new StateFiles(t.places.stateDir);
    f.ensure();
    expect(statSync(f.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(f.dir, "svids")).mode & 0o777).toBe(0o700);
  });

  test("keys are written 0600 and replace the old file whole; no temp file is left", () => {
    const f = new StateFiles(t.places.stateDir);
    f.ensure();
    f.writeKey("node.key", "one");
    f.writeKey("node.key", "two");
    f.writePublic("node.pem", "cert");
    expect(f.read("node.key")).toBe("two");
    expect(statSync(f.path("node.key")).mode & 0o777).toBe(0o600);
    expect(statSync(f.path("node.pem")).mode & 0o777).toBe(0o644);
    expect(readdirSync(f.dir).filter((n) => n.includes(".tmp-"))).toEqual([]);
  });

  test("agent.json round-trips; a broken one is state_unreadable", () => {
    const f = new StateFiles(t.places.stateDir);
    f.ensure();
    expect(f.readAgentJson()).toBeNull();
    const j = { server: "https://h:1", api_port: 2, trust_domain: "example.org", node: "n", spiffe_id: "spiffe://example.org/tidegate/agent/n" };
    f.writeAgentJson(j);
    expect(f.readAgentJson()).toEqual(j);
    f.writePublic("agent.json", "{");
    expect(() => f.readAgentJson()).toThrow(expect.objectContaining({ code: "state_unreadable" }));
  });

  test("entry IDs that cannot be file names are refused", () => {
    for (const ok of ["e1", "0b6f-4c1a", "a.b_c"]) expect(checkEntryId(ok)).toBe(ok);
    for (const bad of ["", ".", "..", ".hidden", "a/b", "a\\b", "x".repeat(129), "é"]) {
      expect(() => checkEntryId(bad)).toThrow(expect.objectContaining({ code: "entry_id_bad" }));
    }
  });
});
