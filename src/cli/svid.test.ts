// `svid inspect` and `svid verify`: a file that cannot be read as what it should hold is named in
// the error, with the error's code. In this process through main().
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "./main.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-uxcli-svid-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(args, { out: (t) => void (out += t), err: (t) => void (err += t) }, {});
  return { code, out, err };
}

describe("svid errors name the file", () => {
  const text = join(dir, "passwd-like.txt");
  writeFileSync(text, "root:x:0:0:root:/root:/bin/sh\n");

  test("svid inspect FILE of text: the file, that it holds no PEM, and the code", async () => {
    const r = await run(["svid", "inspect", text]);
    expect(r.code).toBe(1);
    expect(r.err).toStartWith(`tidegate svid inspect: ${JSON.stringify(text)}: x509: `);
    expect(r.err).toContain("no PEM -----BEGIN line, so it was read as one DER certificate");
    expect(r.err).toEndWith("[x509_malformed]\n");
  });

  test("svid verify --bundle FILE without a certificate: the bundle file and the code", async () => {
    const r = await run(["svid", "verify", "--bundle", text, text]);
    expect(r.code).toBe(1);
    expect(r.err).toStartWith(`tidegate svid verify: --bundle ${JSON.stringify(text)}: bundle: `);
    expect(r.err).toEndWith("[bundle_empty]\n");
  });

  test("svid verify --trust-domain with a bad name is a usage error", async () => {
    const r = await run(["svid", "verify", "--bundle", text, "--trust-domain", "Bad TD", text]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--trust-domain: spiffeid: "Bad TD"');
  });

  test("a missing file is still named once", async () => {
    const r = await run(["svid", "verify", "--bundle", join(dir, "nope.pem"), text]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`tidegate svid verify: svid verify --bundle: cannot read ${JSON.stringify(join(dir, "nope.pem"))}: no such file [input_unreadable]\n`);
  });
});
