// tidegate agent: flags over the config file's agent: settings, and an invalid config stops it.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configuredAgent, mergeAgentSettings } from "./agent.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-agent-settings-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const FP = "ab".repeat(32);
const config = join(dir, "tidegate.yaml");
writeFileSync(
  config,
  `trust_domain: example.org\nagent:\n  server: https://127.0.0.1:8081\n  server_fingerprint: "${FP}"\n  join_token_file: /etc/tidegate/token\n  sync_interval: 10s\n  retry_max: 2m\n`,
);

describe("agent settings from the config file", () => {
  test("an absent file gives nothing", () => {
    expect(configuredAgent(join(dir, "absent.yaml"))).toBeNull();
  });
  test("the file's settings fill what the flags leave out", () => {
    expect(mergeAgentSettings({}, configuredAgent(config))).toEqual({
      server: "https://127.0.0.1:8081/",
      "server-fingerprint": FP,
      "trust-bundle": undefined,
      "join-token": undefined,
      "join-token-file": "/etc/tidegate/token",
      "sync-interval": "10000ms",
      "retry-max": "120000ms",
    });
  });
  test("flags win; a trust flag replaces the file's trust, a token flag the file's token file", () => {
    const merged = mergeAgentSettings({ server: "https://10.0.0.1:1", "trust-bundle": "/b.pem", "join-token": "T", "sync-interval": "1s" }, configuredAgent(config));
    expect(merged).toEqual({
      server: "https://10.0.0.1:1",
      "server-fingerprint": undefined,
      "trust-bundle": "/b.pem",
      "join-token": "T",
      "join-token-file": undefined,
      "sync-interval": "1s",
      "retry-max": "120000ms",
    });
  });
  test("an invalid config file is an error naming file, line and field", () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "trust_domain: example.org\nagent:\n  sever: https://a:1\n");
    expect(() => configuredAgent(bad)).toThrow(`policy: ${bad}:3: agent.sever: unknown key`);
  });
});
