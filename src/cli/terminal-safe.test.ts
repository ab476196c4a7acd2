// What the CLI prints about untrusted text (a file's keys, an argument, an MCP server's tool
// names) never carries a control, C1, bidi or other format character as itself: a policy file, a
// path or a tool name could otherwise retitle or recolour the operator's terminal, or reverse
// what it shows (U+202E). Run through main() in this process, on temporary places.
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "./main.ts";
import { terminalSafe } from "../errors.ts";
import { PinBook } from "../mcp/index.ts";
import { writePins } from "../agent/mcp-pins.ts";

const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\p{Cf}\p{Zl}\p{Zp}]/u;
const EVIL = "\u001b]0;owned\u0007\u001b[31m\u009b31m\u202egnp.exe\u2066";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function places(): { dir: string; flags: string[] } {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-termsafe-"));
  dirs.push(dir);
  return { dir, flags: ["--instance", "input-review-ts", "--state-dir", join(dir, "state"), "--run-dir", join(dir, "run"), "--audit-dir", join(dir, "audit")] };
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

describe("terminalSafe", () => {
  test("escapes C0 but tab and newline, DEL, C1, format characters and separators; keeps the rest", () => {
    for (let c = 0; c < 0x20; c++) {
      const ch = String.fromCharCode(c);
      expect(terminalSafe(ch)).toBe(ch === "\t" || ch === "\n" ? ch : `\\u${c.toString(16).padStart(4, "0")}`);
    }
    for (let c = 0x20; c < 0x7f; c++) expect(terminalSafe(String.fromCharCode(c))).toBe(String.fromCharCode(c));
    for (let c = 0x7f; c <= 0x9f; c++) expect(terminalSafe(String.fromCharCode(c))).toBe(`\\u00${c.toString(16)}`);
    for (const c of [0x061c, 0x200b, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202e, 0x2066, 0x2069, 0xfeff]) {
      expect(terminalSafe(String.fromCharCode(c))).toBe(`\\u${c.toString(16).padStart(4, "0")}`);
    }
    expect(terminalSafe("\r\n")).toBe("\r\n");
    expect(terminalSafe("a\rb")).toBe("a\\u000db");
    expect(terminalSafe("é 日本 😀")).toBe("é 日本 😀");
    expect(terminalSafe("\u{e0001}")).toBe("\\udb40\\udc01"); // a format character above U+FFFF: both halves
  });
});

describe("the CLI's stderr and stdout", () => {
  test("an unknown option is quoted", async () => {
    const r = await run(["secret", `--${EVIL}`]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown option");
    expect(r.err).not.toMatch(UNSAFE);
  });

  test("policy check: a file named with control characters, and one whose key has them", async () => {
    const p = places();
    const missing = await run(["policy", "check", join(p.dir, `x${EVIL}.yaml`)]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("[input_unreadable]");
    expect(missing.err).not.toMatch(UNSAFE);
    const file = join(p.dir, "p.yaml");
    writeFileSync(file, `trust_domain: example.org\n"${EVIL}": 1\n`);
    const bad = await run(["policy", "check", file]);
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("unknown key");
    expect(bad.err).not.toMatch(UNSAFE);
  });

  test("mcp approve: the server's tool names (an MCP server chose them) are quoted on stdout and stderr", async () => {
    const p = places();
    mkdirSync(join(p.dir, "state"), { recursive: true });
    const book = new PinBook();
    const server = "spiffe://example.org/mcp/x";
    book.see(server, `t${EVIL}`, "a".repeat(64));
    book.see(server, `t${EVIL}`, "b".repeat(64));
    writePins(join(p.dir, "state"), book);
    const ok = await run(["mcp", "approve", server, ...p.flags]);
    expect(ok.code).toBe(0);
    expect(ok.out).toContain("approved for spiffe://example.org/mcp/x: ");
    expect(ok.out).not.toMatch(UNSAFE);
    const none = await run(["mcp", "approve", `${server}${EVIL}`, `t${EVIL}`, ...p.flags]);
    expect(none.code).toBe(1);
    expect(none.err).toContain("is waiting for approval");
    expect(none.err).not.toMatch(UNSAFE);
  });
});

// quote() cuts at 100 characters; these messages used JSON.stringify and repeated a 100 KB
// argument whole.
describe("a 100 KB argument is cut short in messages", () => {
  const LONG = "a".repeat(100_000);
  const cases: [string, (flags: string[]) => string[]][] = [
    ["an unknown option", () => ["secret", `--${LONG}`]],
    ["attest's argument", () => ["attest", LONG]],
    ["an audit verify FILE", (f) => ["audit", "verify", LONG, ...f]],
    ["an audit folder that is not one", (f) => ["audit", "tail", "--dir", `/dev/null/${LONG}`, ...f]],
    ["mcp approve SERVER", (f) => ["mcp", "approve", LONG, ...f]],
    ["mcp tools SERVER", (f) => ["mcp", "tools", LONG, ...f]],
  ];
  for (const [what, args] of cases) {
    test(what, async () => {
      const r = await run(args(places().flags));
      expect(r.code).not.toBe(0);
      expect(r.err.length).toBeLessThan(1000);
      expect(r.err).toMatch(/a{50}"?\.\.\./);
    });
  }
});
