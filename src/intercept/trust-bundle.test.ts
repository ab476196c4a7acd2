// The workloads' trust bundle: the system roots then the interception CA, 0644, written whole and
// only again when the CA, the roots or the file itself changed; and openInterception, which the
// agent uses to hold both, with its log lines.
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memoryLogger } from "../runtime/log.ts";
import { decodePem } from "../x509/pem.ts";
import { InterceptionCa } from "./ca.ts";
import { CA_RENEW_BEFORE_MS } from "./ca-files.ts";
import { InterceptError } from "./errors.ts";
import { openInterception } from "./interception.ts";
import { BUNDLE_FILE, SYSTEM_ROOTS, WorkloadTrustBundle } from "./trust-bundle.ts";

const top = mkdtempSync(join(tmpdir(), "tidegate-test-intercept-bundle-"));
afterAll(() => rmSync(top, { recursive: true, force: true }));
let n = 0;
const fresh = () => {
  const d = join(top, `d${n++}`);
  mkdirSync(d);
  return d;
};
const certs = (text: string) => decodePem(text).filter((b) => b.label === "CERTIFICATE").length;

/** Two CAs' PEMs (stand-ins for system roots and for the interception CA). */
async function twoCas(): Promise<[string, string]> {
  const a = await InterceptionCa.open({ stateDir: fresh(), label: "roots" });
  const b = await InterceptionCa.open({ stateDir: fresh(), label: "ca" });
  return [a.certPem, b.certPem];
}

describe("WorkloadTrustBundle", () => {
  test("the system roots, then the CA; 0644 even under umask 077", async () => {
    const dir = fresh();
    const [root, ca] = await twoCas();
    const roots = join(dir, "roots.crt");
    writeFileSync(roots, root.trimEnd()); // no final newline: one is added before the CA
    const old = process.umask(0o077);
    let path: string;
    try {
      path = new WorkloadTrustBundle(join(dir, "run", BUNDLE_FILE), roots).refresh(ca);
    } finally {
      process.umask(old);
    }
    expect(path).toBe(join(dir, "run", BUNDLE_FILE));
    expect(readFileSync(path, "utf8")).toBe(`${root.trimEnd()}\n${ca}`);
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });

  test.skipIf(!statSync(SYSTEM_ROOTS, { throwIfNoEntry: false }))("by default the roots are this host's ca-certificates.crt", async () => {
    const [, ca] = await twoCas();
    const path = new WorkloadTrustBundle(join(fresh(), BUNDLE_FILE)).refresh(ca);
    const system = readFileSync(SYSTEM_ROOTS, "utf8");
    const text = readFileSync(path, "utf8");
    expect(text.startsWith(system)).toBe(true);
    expect(text.endsWith(ca)).toBe(true);
    expect(certs(text)).toBe(certs(system) + 1);
  });

  test("without a roots file (absent, or none asked for) the bundle is the CA alone", async () => {
    const [, ca] = await twoCas();
    const dir = fresh();
    expect(readFileSync(new WorkloadTrustBundle(join(dir, "a.pem"), join(dir, "no-such-roots")).refresh(ca), "utf8")).toBe(ca);
    expect(readFileSync(new WorkloadTrustBundle(join(dir, "b.pem"), null).refresh(ca), "utf8")).toBe(ca);
  });

  test("rewritten when the CA, the roots or the file changed; left alone otherwise", async () => {
    const dir = fresh();
    const [root, ca] = await twoCas();
    const [, ca2] = await twoCas();
    const roots = join(dir, "roots.crt");
    writeFileSync(roots, root);
    const b = new WorkloadTrustBundle(join(dir, BUNDLE_FILE), roots);
    const ino = () => statSync(b.path).ino;
    b.refresh(ca);
    const first = ino();
    b.refresh(ca);
    expect(ino()).toBe(first); // nothing changed: not written
    b.refresh(ca2);
    expect(ino()).not.toBe(first);
    expect(readFileSync(b.path, "utf8")).toBe(`${root}${ca2}`);
    const second = ino();
    appendFileSync(roots, ca);
    b.refresh(ca2);
    expect(ino()).not.toBe(second);
    expect(readFileSync(b.path, "utf8")).toBe(`${root}${ca}${ca2}`);
    rmSync(b.path);
    b.refresh(ca2);
    expect(readFileSync(b.path, "utf8")).toBe(`${root}${ca}${ca2}`);
    writeFileSync(b.path, "tampered");
    b.refresh(ca2);
    expect(readFileSync(b.path, "utf8")).toBe(`${root}${ca}${ca2}`);
  });

  test("roots that exist but cannot be read, or a folder that cannot be written: intercept_bundle_io", async () => {
    const dir = fresh();
    const [, ca] = await twoCas();
    const e1 = (() => { try { new WorkloadTrustBundle(join(dir, "x.pem"), dir).refresh(ca); } catch (e) { return e; } })();
    expect(e1).toBeInstanceOf(InterceptError);
    expect((e1 as InterceptError).code).toBe("intercept_bundle_io");
    writeFileSync(join(dir, "file"), "");
    const e2 = (() => { try { new WorkloadTrustBundle(join(dir, "file", "x.pem"), null).refresh(ca); } catch (e) { return e; } })();
    expect((e2 as InterceptError).code).toBe("intercept_bundle_io");
  });
});

describe("openInterception", () => {
  test("makes the CA and the bundle, logs created then loaded; the bundle follows a renewal", async () => {
    const state = fresh();
    const run = join(fresh(), "run");
    const logger = memoryLogger();
    const clock = { t: Date.UTC(2026, 0, 1) };
    const o = { stateDir: state, runDir: run, label: "node-1", logger, systemRoots: null, now: () => clock.t };
    const i = await openInterception(o);
    expect(i).not.toBeNull();
    expect(logger.lines.map((l) => l.event)).toEqual(["intercept_ca_created"]);
    expect(logger.lines[0]).toMatchObject({ level: "info", ca: join(state, "agent/intercept/ca.pem"), serial: i!.ca.serial });
    expect(i!.bundlePath()).toBe(join(run, BUNDLE_FILE));
    expect(readFileSync(join(run, BUNDLE_FILE), "utf8")).toBe(i!.ca.certPem);
    const again = await openInterception(o);
    expect(logger.lines.map((l) => l.event)).toEqual(["intercept_ca_created", "intercept_ca_loaded"]);
    clock.t = again!.ca.notAfter.getTime() - CA_RENEW_BEFORE_MS;
    await again!.ca.leafFor("a.example.com");
    expect(logger.lines.at(-1)).toMatchObject({ level: "warn", event: "intercept_ca_replaced", serial: again!.ca.serial });
    expect(readFileSync(join(run, BUNDLE_FILE), "utf8")).toBe(again!.ca.certPem); // rewritten at once
  });

  test("a CA that cannot be had: logged, null; a bundle that cannot be written: logged, null path", async () => {
    const logger = memoryLogger();
    const blocker = join(fresh(), "file");
    writeFileSync(blocker, "");
    expect(await openInterception({ stateDir: blocker, runDir: fresh(), label: "n", logger, systemRoots: null })).toBeNull();
    expect(logger.lines.at(-1)).toMatchObject({ level: "error", event: "intercept_unavailable" });
    const i = await openInterception({ stateDir: fresh(), runDir: join(blocker, "run"), label: "n", logger, systemRoots: null });
    expect(i).not.toBeNull();
    expect(i!.bundlePath()).toBeNull();
    expect(logger.lines.at(-1)).toMatchObject({ level: "error", event: "intercept_bundle_failed" });
  });
});
