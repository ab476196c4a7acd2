// The process scanner against a real Bun child (same user, so no root needed): a marker and an EC
// key handed over on stdin are found in its memory (the positive control), a key imported from a
// JWK is found by its raw private value alone, a never-used value is found nowhere, environment,
// argv and an open file are each found where they are, matches across chunk edges are found
// exactly once; keyNeedles agrees with openssl on the private value of every key type it takes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { createPrivateKey, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeHits, keyNeedles, pidsOfCgroup, processTree, scanPids, scanProcess, textNeedle, type Needle, type ScanReport } from "./proc-scan.ts";

const T = 30_000;
const dir = mkdtempSync(join(tmpdir(), "tidegate-proc-scan-"));
const hexOf = (n: number) => randomBytes(n).toString("hex");
const marker = `tg-marker-${hexOf(16)}`;
const never = `tg-never-${hexOf(16)}`;
const envValue = `tg-env-${hexOf(16)}`;
const argvValue = `tg-argv-${hexOf(16)}`;
const fileMarker = `tg-file-${hexOf(16)}`;
const edgesFile = join(dir, "edges.bin");
/** Where fileMarker sits in edges.bin: inside, across, ending at and starting at 4096-byte edges. */
const L = fileMarker.length;
const fileOffsets = [100, 4096 - 1, 2 * 4096 - 5, 3 * 4096 - L + 1, 4 * 4096 - L, 5 * 4096];

/** Reads {marker, pem, jwk} from stdin, imports both keys, keeps marker and keys, opens argv[1]. */
const CHILD = `
const crypto = require("node:crypto");
const fs = require("node:fs");
let input = JSON.parse(await Bun.stdin.text());
globalThis.kept = {
  marker: input.marker,
  pemKey: crypto.createPrivateKey(input.pem),
  jwkKey: crypto.createPrivateKey({ key: input.jwk, format: "jwk" }),
  fd: fs.openSync(process.argv[1], "r"),
};
input = undefined;
Bun.gc(true);
console.log("ready");
setInterval(() => {}, 1 << 30);`;

const P256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
const RSA1024 = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"];

/** openssl's stdout; throws with its stderr when it fails. */
function openssl(...args: string[]): Buffer {
  const r = Bun.spawnSync(["openssl", ...args], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr.toString()}`);
  return r.stdout;
}

/** A new key from `openssl genpkey ALGORITHM`, its file under dir, and its PEM. */
function genKey(name: string, algorithm: readonly string[]): { file: string; pem: string } {
  const file = join(dir, `${name}.pem`);
  openssl("genpkey", ...algorithm, "-out", file);
  return { file, pem: readFileSync(file, "utf8") };
}

const pemKey = genKey("held", P256).pem;
const jwkPem = genKey("jwk", P256).pem;
const needles: Needle[] = [
  ...textNeedle("marker", marker),
  ...textNeedle("never", never),
  ...textNeedle("env", envValue),
  ...textNeedle("argv", argvValue),
  ...textNeedle("file", fileMarker),
  ...keyNeedles("pem key", pemKey),
  ...keyNeedles("jwk key", jwkPem),
];

let child: Subprocess<"pipe", "pipe", "inherit"> | undefined;
let report: ScanReport;
let scanMs = 0;

const sources = (label: string, r = report) => [...new Set(r.found[label]!.map((h) => h.source))];
const foundLabels = (prefix: string) => Object.keys(report.counts).filter((l) => l.startsWith(prefix) && report.counts[l]! > 0);

beforeAll(async () => {
  const edges = randomBytes(6 * 4096 + 64);
  for (const at of fileOffsets) edges.write(fileMarker, at, "latin1");
  writeFileSync(edgesFile, edges);
  child = Bun.spawn([process.execPath, "-e", CHILD, edgesFile, argvValue], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TG_SCAN_ENV: envValue },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  const jwk = createPrivateKey(jwkPem).export({ format: "jwk" });
  child.stdin.write(JSON.stringify({ marker, pem: pemKey, jwk }));
  await child.stdin.end();
  const { value } = await child.stdout.getReader().read();
  expect(new TextDecoder().decode(value)).toBe("ready\n");
  const started = performance.now();
  report = scanProcess(child.pid, needles);
  scanMs = performance.now() - started;
  console.log(`proc-scan: pid ${child.pid} scanned in ${scanMs.toFixed(0)} ms: ${report.memory.rangesRead} ranges read (${(report.memory.bytesRead / 2 ** 20).toFixed(0)} MiB, ${(report.memory.bytesUnpopulated / 2 ** 20).toFixed(0)} MiB never touched), ${report.memory.rangesSkipped} skipped`);
  console.log(`proc-scan: key forms found: ${[...foundLabels("pem key"), ...foundLabels("jwk key")].map((l) => `${l} x${report.counts[l]}`).join(", ")}`);
}, T);

afterAll(async () => {
  child?.kill("SIGKILL");
  await child?.exited;
  rmSync(dir, { recursive: true, force: true });
});

describe("scanProcess on a live Bun process", () => {
  test("finds the marker handed over on stdin in memory, and nowhere else", () => {
    expect(report.counts.marker).toBeGreaterThan(0);
    expect(sources("marker")).toEqual(["memory"]);
    expect(report.found.marker![0]!.address).toMatch(/^[0-9a-f]+$/);
  });

  test("finds the EC key it imported in memory (the positive control)", () => {
    expect(foundLabels("pem key").length).toBeGreaterThan(0);
    for (const l of foundLabels("pem key")) expect(sources(l)).toEqual(["memory"]);
  });

  test("finds a key imported from a JWK by its raw private value alone: no PEM or DER of it ever existed there", () => {
    expect(report.counts["jwk key: private value"]! + report.counts["jwk key: private value, little-endian"]!).toBeGreaterThan(0);
    for (const form of ["pem first line", "pem body", "der"]) expect(report.counts[`jwk key: ${form}`]).toBe(0);
  });

  test("finds a never-used value nowhere", () => {
    expect(report.counts.never).toBe(0);
    expect(report.counts["never: utf-16le"]).toBe(0);
  });

  test("finds a value of its environment in environ, and one of its argv in cmdline", () => {
    expect(sources("env")).toContain("environ");
    expect(report.found.env!.find((h) => h.source === "environ")!.where).toBe("environ");
    expect(sources("argv")).toContain("cmdline");
  });

  test("finds a file it holds open under that fd, at every offset, across chunk edges, once each", () => {
    const fd = report.fds.find((f) => f.target === edgesFile);
    expect(fd).toMatchObject({ bytesRead: 6 * 4096 + 64, truncated: false });
    for (const chunkBytes of [undefined, 4096]) {
      const r = chunkBytes === undefined ? report : scanProcess(child!.pid, needles, { chunkBytes });
      const inFile = r.found.file!.filter((h) => h.source === "fd-file");
      expect(inFile.map((h) => h.where)).toEqual(fileOffsets.map(() => `fd ${fd!.fd} -> ${edgesFile}`));
      expect(inFile.map((h) => h.offset)).toEqual(fileOffsets);
    }
  }, T);

  test("lists every open fd with its target", () => {
    expect(report.fds.map((f) => f.fd)).toEqual(expect.arrayContaining([0, 1, 2]));
    expect(report.fds.every((f) => f.target !== "" && f.unreadable === undefined)).toBe(true);
  });

  test("reads the readable memory, counts [vvar]-like ranges as skipped, in well under five seconds", () => {
    expect(report.memory.rangesRead).toBeGreaterThan(10);
    expect(report.memory.bytesRead).toBeGreaterThan(8 << 20);
    expect(report.memory.rangesSkipped).toBe(report.memory.skipped.length - report.memory.rangesPartial);
    const vvar = report.memory.skipped.find((s) => s.range.endsWith("[vvar]"));
    if (vvar !== undefined) expect(vvar.reason).toContain("EIO");
    expect(scanMs).toBeLessThan(5000);
  });

  test("finds with 4099-byte chunks every marker copy that the default finds before and after", () => {
    // Freed copies come and go as the child's allocator returns pages; the live ones stay put.
    const addresses = (r: ScanReport) => r.found.marker!.map((h) => h.address!);
    const small = addresses(scanProcess(child!.pid, needles, { chunkBytes: 4099 }));
    const after = addresses(scanProcess(child!.pid, needles));
    const stable = addresses(report).filter((a) => after.includes(a));
    expect(stable.length).toBeGreaterThan(0);
    expect(small).toEqual(expect.arrayContaining(stable));
  }, T);

  test("a process tree and scanPids cover a child's descendants", async () => {
    const sh = Bun.spawn(["sh", "-c", "sleep 30 & wait"], { stdout: "ignore" });
    try {
      let tree: number[] = [];
      for (let i = 0; i < 100 && tree.length < 2; i++, await Bun.sleep(10)) tree = processTree(sh.pid);
      expect(tree[0]).toBe(sh.pid);
      expect(tree.length).toBe(2);
      const { reports, gone } = scanPids(tree, textNeedle("never", never));
      expect(reports.map((r) => r.pid)).toEqual(tree);
      expect(gone).toEqual([]);
      expect(describeHits(reports)).toEqual([]);
    } finally {
      for (const pid of processTree(sh.pid).reverse()) process.kill(pid, "SIGKILL");
      await sh.exited;
    }
  }, T);

  test("a pid that is not a positive integer is refused (bad_pid)", () => {
    for (const pid of [0, -1, 1.5, Number.NaN]) expect(() => scanProcess(pid, textNeedle("never", never))).toThrow(expect.objectContaining({ code: "bad_pid" }));
  });

  test("a process that has exited is refused (process_gone), and listed as gone by scanPids", async () => {
    const done = Bun.spawn(["true"]);
    await done.exited;
    expect(() => scanProcess(done.pid, textNeedle("never", never))).toThrow(expect.objectContaining({ code: "process_gone" }));
    expect(scanPids([done.pid], textNeedle("never", never))).toEqual({ reports: [], gone: [done.pid] });
  });
});

describe("needles", () => {
  // Each key type, and openssl's own print of its private value (the line after `label`).
  test.each([
    ["EC P-256", P256, "priv:"],
    ["EC P-384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"], "priv:"],
    ["Ed25519", ["-algorithm", "ED25519"], "priv:"],
    ["X25519", ["-algorithm", "X25519"], "priv:"],
    ["RSA 1024", RSA1024, "privateExponent:"],
  ])("keyNeedles of a %s PKCS#8 key: its private value is openssl's, its DER and PEM lines the file's", (name, algorithm, label) => {
    const { file, pem } = genKey(name.replace(/\W/g, ""), algorithm);
    const byLabel: Record<string, Buffer> = Object.fromEntries(keyNeedles("k", pem).map((n) => [n.label, Buffer.from(n.bytes)]));
    const printed = openssl("pkey", "-in", file, "-noout", "-text").toString().split(label)[1]!.split(/\n\S/)[0]!.replace(/[\s:]/g, "");
    expect(byLabel["k: private value"]!.toString("hex").replace(/^(00)+/, "")).toBe(printed.replace(/^(00)+/, ""));
    expect(byLabel["k: private value, little-endian"]!.toString("hex")).toBe(Buffer.from(byLabel["k: private value"]!).reverse().toString("hex"));
    const body = pem.split("\n").filter((l) => l !== "" && !l.startsWith("-----"));
    expect(byLabel["k: pem first line"]!.toString()).toBe(body[0]!);
    expect(byLabel["k: pem body"]!.toString()).toBe(body.join(""));
    expect(byLabel["k: der"]).toEqual(openssl("pkcs8", "-topk8", "-nocrypt", "-in", file, "-outform", "DER"));
  }, T);

  test.each([
    ["EC PRIVATE KEY", ["ec"]],
    ["RSA PRIVATE KEY", ["rsa", "-traditional"]],
  ])("keyNeedles of a %s (traditional) key gives the private value of its PKCS#8 form", (type, command) => {
    const pkcs8 = genKey(`traditional-${type.split(" ")[0]}`, type.startsWith("EC") ? P256 : RSA1024);
    const traditional = openssl(...command, "-in", pkcs8.file).toString();
    expect(traditional).toStartWith(`-----BEGIN ${type}-----`);
    const value = (pem: string) => keyNeedles("k", pem).find((n) => n.label === "k: private value")!.bytes;
    expect(value(traditional)).toEqual(value(pkcs8.pem));
  }, T);

  test.each([
    ["no PEM at all", "hello"],
    ["a certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
    ["an encrypted key", "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"],
    ["a legacy encrypted key", "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END EC PRIVATE KEY-----\n"],
    ["a truncated DER", "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEH\n-----END PRIVATE KEY-----\n"],
    ["an unknown algorithm", `-----BEGIN PRIVATE KEY-----\n${Buffer.from("300f020100300706052b0e03020704010a", "hex").toString("base64")}\n-----END PRIVATE KEY-----\n`],
  ])("keyNeedles refuses %s (bad_key)", (_, pem) => {
    expect(() => keyNeedles("k", pem)).toThrow(expect.objectContaining({ code: "bad_key" }));
  });

  test("keyNeedles passes over an EC PARAMETERS block before the key (openssl ecparam -genkey)", () => {
    const withParams = openssl("ecparam", "-name", "prime256v1", "-genkey").toString();
    expect(withParams).toStartWith("-----BEGIN EC PARAMETERS-----");
    const value = keyNeedles("k", withParams).find((n) => n.label === "k: private value")!.bytes;
    expect(value.length).toBe(32);
  });

  test("textNeedle gives the UTF-8 and UTF-16LE bytes", () => {
    const [utf8, utf16] = textNeedle("t", "é-secret");
    expect(utf8).toEqual({ label: "t", bytes: new Uint8Array(Buffer.from("é-secret", "utf8")) });
    expect(utf16).toEqual({ label: "t: utf-16le", bytes: new Uint8Array([0xe9, 0, 0x2d, 0, 0x73, 0, 0x65, 0, 0x63, 0, 0x72, 0, 0x65, 0, 0x74, 0]) });
  });

  test("needles shorter than 8 bytes, repeated labels and none at all are refused (bad_needle)", () => {
    for (const bad of [[{ label: "short", bytes: new Uint8Array(7) }], [...textNeedle("x", never), ...textNeedle("x", marker)], []]) {
      expect(() => scanProcess(process.pid, bad)).toThrow(expect.objectContaining({ code: "bad_needle" }));
    }
  });
});

describe("pidsOfCgroup", () => {
  test("reads cgroup.procs of the directory and of every cgroup below it", () => {
    const cg = join(dir, "cg");
    for (const [sub, procs] of [["", "12\n3\n"], ["a", "7\n"], ["a/b", ""], ["c", "40\n"]] as const) {
      mkdirSync(join(cg, sub), { recursive: true });
      writeFileSync(join(cg, sub, "cgroup.procs"), procs);
    }
    expect(pidsOfCgroup(cg)).toEqual([3, 7, 12, 40]);
    expect(() => pidsOfCgroup(join(dir, "nope"))).toThrow(expect.objectContaining({ code: "bad_cgroup" }));
  });
});
