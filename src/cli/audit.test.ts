// `tidegate audit --help` and each verb's: what it does, where it reads, exit codes, an example.
import { describe, expect, test } from "bun:test";
import { run } from "./audit-testkit.ts";

describe("tidegate audit --help", () => {
  test("the group lists tail, verify and export; tidegate --help lists audit", async () => {
    const r = await run(["audit", "--help"]);
    expect(r.code).toBe(0);
    for (const verb of ["tail", "verify", "export"]) expect(r.out).toMatch(new RegExp(`^  ${verb} +\\S`, "m"));
    expect((await run(["--help"])).out).toMatch(/^ {2}audit +read, verify and export the tamper-evident audit log$/m);
    expect((await run(["audit"])).code).toBe(2);
  });

  for (const [verb, example] of [
    ["tail", "  tidegate audit tail --where type=deny"],
    ["verify", "  tidegate audit verify --bundle "],
    ["export", "  tidegate audit export --otlp http://"],
  ] as const) {
    test(`audit ${verb} --help: what, where it reads, exit codes, an example`, async () => {
      const r = await run(["audit", verb, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toStartWith(`usage: tidegate audit ${verb} `);
      expect(r.out).toContain("/var/log/tidegate[-INSTANCE]");
      expect(r.out).toMatch(/Exit 0 [^\n]*; 1 [^\n]*/);
      expect(r.out).toMatch(/\b2 (on a )?usage error/);
      expect(r.out).toContain(example);
    });
  }
});
