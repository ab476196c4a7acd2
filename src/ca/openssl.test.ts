/**
 * Interop: chains the CA mints under the old and the new root, across a root rotation, pass
 * `openssl verify` against the bundle's roots written as PEM (at the simulated time, -attime).
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPemBundle } from "../spiffe/bundle-pem.ts";
import { encodePem } from "../x509/pem.ts";
import { CaManager, type IssuedSvid } from "./manager.ts";
import { MemoryCaStorage } from "./storage.ts";
import { SMALL, TD, at, mintAt } from "./test-support.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-ca-openssl-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function opensslVerify(name: string, svid: IssuedSvid, when: Date): { code: number; out: string } {
  const leaf = join(dir, `${name}-leaf.pem`);
  const untrusted = join(dir, `${name}-signing.pem`);
  writeFileSync(leaf, encodePem("CERTIFICATE", svid.chain[0]!));
  writeFileSync(untrusted, encodePem("CERTIFICATE", svid.chain[1]!));
  const attime = String(Math.floor(when.getTime() / 1000));
  const r = Bun.spawnSync(
    ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-attime", attime, "-CAfile", join(dir, "bundle.pem"), "-untrusted", untrusted, leaf],
    { stdout: "pipe", stderr: "pipe" },
  );
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() };
}

test("openssl verify accepts chains under the retiring and the new root against the bundle PEM", async () => {
  const ca = await CaManager.init({ trustDomain: TD, settings: SMALL, storage: new MemoryCaStorage(), now: at(0) });
  await ca.rotateRoot(at(100));
  const before = await mintAt(ca, at(300), 1_000);
  await ca.tick(at(400));
  const after = await mintAt(ca, at(500), 1_000);
  expect(ca.bundle().x509Authorities).toHaveLength(2);
  writeFileSync(join(dir, "bundle.pem"), formatPemBundle(ca.bundle()));
  for (const [name, svid] of [["before", before], ["after", after]] as const) {
    const r = opensslVerify(name, svid, at(600));
    expect(r.out).toContain(": OK");
    expect(r.code).toBe(0);
  }
  // and openssl refuses the same chain once it has expired: the check is real
  expect(opensslVerify("late", before, at(1_400)).code).not.toBe(0);
});
