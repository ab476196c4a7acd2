// What --help and a mistyped verb tell a first-time user: usage lines whose brackets pair up and
// that show the verb's options, an example for the verbs people start with, "did you mean".
import { describe, expect, test } from "bun:test";
import { main, rootCommand } from "./main.ts";
import type { Command } from "./command.ts";

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

function all(cmd: Command, path: string[] = []): [string[], Command][] {
  return [[path, cmd], ...(cmd.subcommands ?? []).flatMap((c) => all(c, [...path, c.name]))];
}

describe("usage lines", () => {
  for (const [path, cmd] of all(rootCommand)) {
    test(`tidegate ${path.join(" ")}: every [ and ( is closed, in order`, () => {
      for (const line of cmd.usage) {
        const open: string[] = [];
        for (const ch of line) {
          if (ch === "[" || ch === "(") open.push(ch);
          if (ch === "]" || ch === ")") expect(`${line}: ${open.pop()}${ch}`).toBe(`${line}: ${ch === "]" ? "[" : "("}${ch}`);
        }
        expect(`${line}: ${open.join("")}`).toBe(`${line}: `);
      }
    });
  }

  test("server rotate-ca and the svid group name every option their verbs take", async () => {
    expect((await run(["server", "rotate-ca", "--help"])).out).toStartWith("usage: tidegate server rotate-ca [--root] [--json]\n");
    expect((await run(["server", "--help"])).out).toContain("tidegate server rotate-ca [--root] [--json]\n");
    expect((await run(["svid", "--help"])).out).toContain("svid verify --bundle BUNDLE [--trust-domain TD] [--at TIME] FILE\n");
  });
});

describe("examples", () => {
  for (const [path, example] of [
    [["demo"], "Example: tidegate demo --instance docs-demo\n"],
    [["up"], "Example: tidegate up --trust-domain example.org\n"],
    [["run"], "Example: tidegate run --workload github-mcp -- curl -sS https://api.github.com/user\n"],
    [["secret", "set"], 'Example: printf %s "$GITHUB_TOKEN" | tidegate secret set github_token\n'],
    [["policy", "check"], "Example: tidegate policy check /etc/tidegate/tidegate.yaml\n"],
    [["policy", "explain"], "Example: tidegate policy explain --from spiffe://example.org/mcp/github --to api.github.com:443\n"],
    [["entry", "create"], "Example: tidegate entry create --spiffe-id spiffe://example.org/agent/demo --node node1 --selector tidegate:workload:demo\n"],
    [["token", "create"], "Example: tidegate token create --node node1 --ttl 10m\n"],
    [["mcp", "pin"], "Example: tidegate mcp pin spiffe://example.org/mcp/github --from-file approved.json\n"],
  ] as const) {
    test(`tidegate ${path.join(" ")} --help ends its text with an example`, async () => {
      const r = await run([...path, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain(`\n\n${example}`);
    });
  }
});

describe("a mistyped verb", () => {
  for (const [args, where, hint] of [
    [["stauts"], "tidegate", "status"],
    [["polcy", "check"], "tidegate", "policy"],
    [["policy", "chek"], "tidegate policy", "check"],
    [["server", "rotate-cs"], "tidegate server", "rotate-ca"],
    [["help"], "tidegate", "--help"],
  ] as const) {
    test(`tidegate ${args.join(" ")}: did you mean ${hint}?`, async () => {
      const r = await run([...args]);
      expect(r.code).toBe(2);
      expect(r.err).toStartWith(`${where}: unknown command ${JSON.stringify(args[args.length === 2 && args[0] !== "polcy" ? 1 : 0])} for ${where}; did you mean ${hint}?\n`);
    });
  }

  test("a word near nothing gets no suggestion", async () => {
    const r = await run(["frobnicate"]);
    expect(r.err).toBe(`tidegate: unknown command "frobnicate" for tidegate\nrun 'tidegate --help' for usage\n`);
  });
});
