// install.sh end to end, against a real HTTP server on 127.0.0.1 serving a release folder: what it
// installs when the checksum matches, and that every failure (bad checksum, a missing file, no
// server, an unsupported machine, a prefix it cannot write) ends with one `install: error:` line
// naming what failed and leaves nothing behind: no file in the prefix, no temporary name, no unit,
// no temporary folder. Needs no root: everything goes under one temporary folder; as root, the
// cases about permissions drop to nobody with setpriv.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { machine, tmpdir } from "node:os";
import { join } from "node:path";
import { REPO } from "../helpers/binary.ts";
import { freePort } from "../helpers/e2e-kit.ts";

const T = 30_000;
const SCRIPT = join(REPO, "install.sh");
const DIST = join(REPO, "dist");
const PATH = process.env.PATH ?? "/usr/bin:/bin";
// By name, as `curl ... | sh` runs it: $0 is then "sh", which install.sh must not take for a path.
const SH = "sh";
const ARCH = ({ x86_64: "x64", amd64: "x64", aarch64: "arm64", arm64: "arm64" } as Record<string, string>)[machine()];
if (ARCH === undefined) throw new Error(`install.test: no release architecture for '${machine()}'`);
const ARTIFACT = `tidegate-linux-${ARCH}`;
const ROOT_UID = process.getuid?.() === 0;
// Runs install.sh as nobody when the tests run as root, so that "not writable" means something.
const UNPRIVILEGED = ROOT_UID ? [Bun.which("setpriv") ?? "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
const NO_SYSTEMD = !existsSync("/run/systemd/system");

const sha256 = (b: string | Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** A release binary's stand-in: answers --version like tidegate does. */
function standIn(version: string): string {
  return `#!/bin/sh\nif [ "\${1:-}" = --version ]; then echo "tidegate ${version} (test)"; exit 0; fi\necho "stand-in: $*" >&2\nexit 1\n`;
}

/** The files of a release folder: the binary for this machine and its SHA256SUMS. */
function release(version = "9.9.9"): Record<string, string> {
  const bin = standIn(version);
  return { [ARTIFACT]: bin, SHA256SUMS: `${"0".repeat(64)}  tidegate-linux-other\n${sha256(bin)}  ${ARTIFACT}\n` };
}

const expectedUnit = (prefix: string): string => `# Written by tidegate's install.sh; running it again rewrites this file.
[Unit]
Description=tidegate: workload identity, capture, mTLS and MCP policy
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=${prefix}/bin/tidegate up --foreground
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
`;

let ROOT = "";
let server: ReturnType<typeof Bun.serve>;
let BASE = "";
/** What the server answers with, by file name ("redirect:URL": a 302 there); anything else is a 404. */
let files: Record<string, string | Blob> = {};
/** The file names asked for during the last install run. */
const requests: string[] = [];

beforeAll(() => {
  ROOT = mkdtempSync(join(tmpdir(), "tidegate-install-"));
  chmodSync(ROOT, 0o755);
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: serveFiles });
  BASE = `http://127.0.0.1:${server.port}`;
});

/** Answers with `files` and records each name asked for. */
function serveFiles(req: Request): Response {
  const name = decodeURIComponent(new URL(req.url).pathname.slice(1));
  requests.push(name);
  const body = files[name];
  if (typeof body === "string" && body.startsWith("redirect:")) return new Response(null, { status: 302, headers: { location: body.slice("redirect:".length) } });
  return body === undefined ? new Response("not found\n", { status: 404 }) : new Response(body);
}

afterAll(() => {
  server?.stop(true);
  if (ROOT !== "") rmSync(ROOT, { recursive: true, force: true });
});

interface Case {
  readonly dir: string;
  readonly prefix: string;
  readonly unit: string;
  readonly tmp: string;
  readonly cwd: string;
}

let cases = 0;
/** A fresh folder for one run: PREFIX and the unit folder (not created), TMPDIR and a cwd outside the checkout. */
function newCase(opts: { unprivileged?: boolean } = {}): Case {
  const dir = join(ROOT, `case-${++cases}`);
  const c = { dir, prefix: join(dir, "prefix"), unit: join(dir, "units"), tmp: join(dir, "tmp"), cwd: join(dir, "cwd") };
  for (const d of [dir, c.tmp, c.cwd]) mkdirSync(d, { mode: 0o755 });
  if (opts.unprivileged && ROOT_UID) for (const d of [dir, c.tmp, c.cwd]) chownSync(d, 65534, 65534);
  return c;
}

const into = (c: Case): string[] => ["--prefix", c.prefix, "--unit-dir", c.unit];

interface Run {
  readonly code: number;
  readonly stderr: string;
  readonly stdout: string;
}

/** `sh install.sh ARGS` (or the script piped into `sh -s -- ARGS`) in the case's cwd, TMPDIR its tmp. */
async function install(c: Case, args: readonly string[], o: { base?: string; path?: string; piped?: boolean; script?: string; unprivileged?: boolean; env?: Record<string, string> } = {}): Promise<Run> {
  requests.length = 0;
  const argv = [...(o.unprivileged ? UNPRIVILEGED : []), SH, ...(o.piped ? ["-s", "--"] : [o.script ?? SCRIPT]), ...args];
  const proc = Bun.spawn(argv, {
    cwd: c.cwd,
    env: { PATH: o.path ?? PATH, TMPDIR: c.tmp, HOME: c.dir, TIDEGATE_DOWNLOAD_URL: o.base ?? BASE, ...o.env },
    stdin: o.piped ? Bun.file(o.script ?? SCRIPT) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Exit 1, every line of stderr is the installer's, and exactly one is an error holding each of `parts`. */
function expectFailure(r: Run, ...parts: string[]): void {
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  const errors = lines.filter((l) => l.startsWith("install: error: "));
  expect({ code: r.code, errors: errors.length, foreign: lines.filter((l) => !l.startsWith("install: ")) }).toEqual({ code: 1, errors: 1, foreign: [] });
  for (const p of parts) expect(errors[0]).toContain(p);
}

/** No prefix, no unit folder, an empty TMPDIR. */
function expectNothingLeft(c: Case): void {
  expect({ prefix: existsSync(c.prefix), unit: existsSync(c.unit), tmp: readdirSync(c.tmp) }).toEqual({ prefix: false, unit: false, tmp: [] });
}

/** PREFIX/bin holds exactly tidegate, 0755, with these bytes; TMPDIR is empty. */
function expectInstalled(c: Case, bytes: string): void {
  const bin = join(c.prefix, "bin", "tidegate");
  expect(readdirSync(join(c.prefix, "bin"))).toEqual(["tidegate"]);
  expect(statSync(bin).mode & 0o7777).toBe(0o755);
  expect(readFileSync(bin, "utf8")).toBe(bytes);
  expect(readdirSync(c.tmp)).toEqual([]);
}

/** A PATH of symlinks to everything on PATH except `names`: a machine without those tools. */
function pathWithout(...names: string[]): string {
  const dir = join(ROOT, `path-without-${names.join("-")}`);
  if (existsSync(dir)) return dir;
  mkdirSync(dir, { mode: 0o755 });
  const seen = new Set(names);
  for (const d of PATH.split(":")) {
    if (d === "" || !existsSync(d)) continue;
    for (const e of readdirSync(d)) {
      if (seen.has(e)) continue;
      seen.add(e);
      symlinkSync(join(d, e), join(dir, e));
    }
  }
  return dir;
}

/** Makes `dir` look like a checkout to install.sh (package.json, src/, bpf/, install.sh); returns the copy's path. */
function fakeCheckout(dir: string): string {
  for (const d of ["src", "bpf"]) mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
  writeFileSync(join(dir, "package.json"), "{}\n");
  writeFileSync(join(dir, "install.sh"), readFileSync(SCRIPT));
  return join(dir, "install.sh");
}

describe("install.sh as a file", () => {
  test("passes sh -n", () => {
    const r = Bun.spawnSync([SH, "-n", SCRIPT], { stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    expect(r.exitCode).toBe(0);
  });

  test("--help says what every option does and names TIDEGATE_DOWNLOAD_URL", async () => {
    const c = newCase();
    const r = await install(c, ["--help"]);
    expect(r.code).toBe(0);
    for (const s of ["--prefix DIR", "--from-source", "--download", "--unit-dir DIR", "--no-unit", "--enable", "--help", "TIDEGATE_DOWNLOAD_URL", "SHA256SUMS", "/usr/local", "/etc/systemd/system"]) expect(r.stdout).toContain(s);
    expect(requests).toEqual([]);
    expectNothingLeft(c);
  }, T);

  const usage: [string, string[], string][] = [
    ["an unknown option", ["--bogus"], "unknown option '--bogus'"],
    ["--prefix without a directory", ["--prefix"], "--prefix needs a directory"],
    ["--unit-dir without a directory", ["--unit-dir"], "--unit-dir needs a directory"],
    ["--from-source with --download", ["--from-source", "--download"], "--from-source and --download exclude each other"],
    ["--enable with --no-unit", ["--no-unit", "--enable"], "--enable needs the unit"],
  ];
  for (const [what, args, message] of usage) {
    test(`${what} is a usage error (exit 2) before anything is fetched`, async () => {
      const c = newCase();
      const r = await install(c, ["--download", ...into(c), ...args]);
      expect(r.code).toBe(2);
      expect(r.stderr).toStartWith(`install: error: ${message}`);
      expect(r.stderr).toContain("(try --help)");
      expect(requests).toEqual([]);
      expectNothingLeft(c);
    }, T);
  }
});

describe("download mode, checksum good", () => {
  test("installs PREFIX/bin/tidegate 0755, prints its version, writes the unit with PREFIX", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expect(r.stderr).toContain(`install: installed ${c.prefix}/bin/tidegate: tidegate 9.9.9 (test)`);
    expect(r.code).toBe(0);
    expectInstalled(c, files[ARTIFACT] as string);
    expect(r.stderr).toContain(`install: verified ${ARTIFACT}: sha256 ${sha256(files[ARTIFACT] as string)} matches SHA256SUMS`);
    expect(readdirSync(c.unit)).toEqual(["tidegate.service"]);
    expect(readFileSync(join(c.unit, "tidegate.service"), "utf8")).toBe(expectedUnit(c.prefix));
    expect(statSync(join(c.unit, "tidegate.service")).mode & 0o777).toBe(0o644);
    expect(requests).toEqual(["SHA256SUMS", ARTIFACT]);
    if (NO_SYSTEMD) expect(r.stderr).toContain(`systemd is not running on this machine; start tidegate with: ${c.prefix}/bin/tidegate up`);
    else expect(r.stderr).toContain("systemctl daemon-reload && systemctl enable --now tidegate");
  }, T);

  test.skipIf(!NO_SYSTEMD)("--enable where systemd does not run writes the unit, says it is not enabled, exits 0", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", "--enable", ...into(c)]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`install: systemd is not running on this machine: ${c.unit}/tidegate.service was written but not enabled; start tidegate without it with: ${c.prefix}/bin/tidegate up`);
    expect(readFileSync(join(c.unit, "tidegate.service"), "utf8")).toBe(expectedUnit(c.prefix));
    expectInstalled(c, files[ARTIFACT] as string);
  }, T);

  test("--no-unit writes no unit", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", "--no-unit", ...into(c)]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("install: no systemd unit written (--no-unit)");
    expectInstalled(c, files[ARTIFACT] as string);
    expect(existsSync(c.unit)).toBe(false);
  }, T);

  test("piped into sh -s outside a checkout, it downloads without being told to", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, into(c), { piped: true });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain("building from source");
    expect(requests).toEqual(["SHA256SUMS", ARTIFACT]);
    expectInstalled(c, files[ARTIFACT] as string);
    expect(readFileSync(join(c.unit, "tidegate.service"), "utf8")).toBe(expectedUnit(c.prefix));
  }, T);

  test("a second run upgrades by renaming a new file over the old one", async () => {
    files = release("9.9.9");
    const c = newCase();
    expect((await install(c, ["--download", ...into(c)])).code).toBe(0);
    const before = statSync(join(c.prefix, "bin", "tidegate")).ino;
    files = release("9.9.10");
    const r = await install(c, ["--download", ...into(c)]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`installed ${c.prefix}/bin/tidegate: tidegate 9.9.10 (test)`);
    expectInstalled(c, files[ARTIFACT] as string);
    expect(statSync(join(c.prefix, "bin", "tidegate")).ino).not.toBe(before);
  }, T);

  test("without curl it downloads with wget", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { path: pathWithout("curl") });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("(with wget)");
    expectInstalled(c, files[ARTIFACT] as string);
  }, T);

  for (const [hasher, missing] of [["shasum", ["sha256sum"]], ["openssl", ["sha256sum", "shasum"]]] as const) {
    test(`without ${missing.join(" or ")} it verifies with ${hasher}`, async () => {
      files = release();
      const c = newCase();
      const r = await install(c, ["--download", ...into(c)], { path: pathWithout(...missing) });
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`install: verified ${ARTIFACT}: sha256 ${sha256(files[ARTIFACT] as string)} matches SHA256SUMS (${hasher})`);
      expectInstalled(c, files[ARTIFACT] as string);
    }, T);
  }
});

// Over plain http the checksum and the binary come down the same path: whoever can change one can
// change both, so install.sh says so for an http:// base URL, and only for one.
describe("the base URL's scheme", () => {
  const NOTE = (base: string) => `install: note: ${base} is plain http: the checksum then catches a damaged download, not a tampered one`;
  let https: ReturnType<typeof Bun.serve> | undefined;
  let httpsBase = "";
  let httpsCa = "";

  beforeAll(() => {
    const pki = join(ROOT, "https-pki");
    mkdirSync(pki, { mode: 0o755 });
    const r = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { cwd: pki, stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`openssl req exited ${r.exitCode}: ${r.stderr.toString()}`);
    httpsCa = join(pki, "cert.pem");
    https = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert: readFileSync(httpsCa, "utf8"), key: readFileSync(join(pki, "key.pem"), "utf8") }, fetch: serveFiles });
    httpsBase = `https://127.0.0.1:${https.port}`;
  });

  afterAll(() => {
    https?.stop(true);
  });

  test("a plain http:// TIDEGATE_DOWNLOAD_URL: the note (the checksum catches damage, not tampering) once, before anything is fetched; installed", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expect(r.code).toBe(0);
    const lines = r.stderr.split("\n");
    expect(lines.filter((l) => l.includes("plain http"))).toEqual([NOTE(BASE)]);
    expect(lines.indexOf(NOTE(BASE))).toBeLessThan(lines.findIndex((l) => l.startsWith("install: downloading ")));
    expectInstalled(c, files[ARTIFACT] as string);
  }, T);

  test("the note names the base URL without its trailing slashes, and comes with wget too", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { base: `${BASE}//`, path: pathWithout("curl") });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("(with wget)");
    expect(r.stderr.split("\n").filter((l) => l.includes("plain http"))).toEqual([NOTE(BASE)]);
  }, T);

  test("what the note warns of: over http, a changed binary served with a SHA256SUMS changed to match is installed", async () => {
    const changed = standIn("6.6.6");
    files = { [ARTIFACT]: changed, SHA256SUMS: `${sha256(changed)}  ${ARTIFACT}\n` };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(NOTE(BASE));
    expectInstalled(c, changed);
  }, T);

  test("an https:// base URL: no note; the download is verified by TLS and installed", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { base: httpsBase, env: { CURL_CA_BUNDLE: httpsCa } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`install: downloading SHA256SUMS from ${httpsBase}/SHA256SUMS`);
    expect(r.stderr).not.toContain("plain http");
    expect(r.stderr).not.toContain("note:");
    expect(requests).toEqual(["SHA256SUMS", ARTIFACT]);
    expectInstalled(c, files[ARTIFACT] as string);
  }, T);

  test("an https:// server whose certificate curl does not trust: refused, nothing installed, no note", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { base: httpsBase });
    expectFailure(r, `downloading SHA256SUMS from ${httpsBase}/SHA256SUMS failed`);
    expect(r.stderr).not.toContain("plain http");
    expect(requests).toEqual([]);
    expectNothingLeft(c);
  }, T);

  for (const base of ["ftp://127.0.0.1/release", "file:///tmp/release", "127.0.0.1/release"]) {
    test(`TIDEGATE_DOWNLOAD_URL '${base}' is refused before anything is fetched, named`, async () => {
      files = release();
      const c = newCase();
      const r = await install(c, ["--download", ...into(c)], { base });
      expectFailure(r, `TIDEGATE_DOWNLOAD_URL '${base}' is not an http(s) URL`);
      expect(r.stderr).not.toContain("plain http");
      expect(requests).toEqual([]);
      expectNothingLeft(c);
    }, T);
  }
});

describe("download mode failures leave nothing behind", () => {
  test("bad checksum: names the file, the expected and the actual hash, not installed", async () => {
    const good = release();
    const tampered = `${good[ARTIFACT]}echo tampered\n`;
    files = { ...good, [ARTIFACT]: tampered };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, `checksum mismatch for ${ARTIFACT}`, `${BASE}/${ARTIFACT}`, `expected sha256 ${sha256(good[ARTIFACT]!)}`, `got ${sha256(tampered)}`, "not installed");
    expectNothingLeft(c);
  }, T);

  test("bad checksum after a good install: the old binary stays as it was", async () => {
    files = release("9.9.9");
    const c = newCase();
    expect((await install(c, ["--download", ...into(c)])).code).toBe(0);
    const bin = join(c.prefix, "bin", "tidegate");
    const before = statSync(bin);
    const unitBefore = readFileSync(join(c.unit, "tidegate.service"), "utf8");
    const next = release("9.9.10");
    files = { ...next, [ARTIFACT]: `${next[ARTIFACT]}echo tampered\n` };
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, `checksum mismatch for ${ARTIFACT}`, "not installed");
    expectInstalled(c, release("9.9.9")[ARTIFACT]!);
    const after = statSync(bin);
    expect({ ino: after.ino, mtime: after.mtimeMs }).toEqual({ ino: before.ino, mtime: before.mtimeMs });
    expect(readdirSync(c.unit)).toEqual(["tidegate.service"]);
    expect(readFileSync(join(c.unit, "tidegate.service"), "utf8")).toBe(unitBefore);
  }, T);

  test("a redirect to anything but https is not followed (curl): nothing downloaded through it", async () => {
    const good = release();
    files = { ...good, [ARTIFACT]: `redirect:${BASE}/elsewhere`, elsewhere: good[ARTIFACT]! };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`install: error: downloading ${ARTIFACT} from ${BASE}/${ARTIFACT} failed`);
    expect(requests).not.toContain("elsewhere");
    expectNothingLeft(c);
  }, T);

  test("a verified binary that does not run here is not installed, and the folders made for it are removed", async () => {
    const broken = "#!/bin/sh\necho 'cannot execute: wrong libc' >&2\nexit 126\n";
    files = { [ARTIFACT]: broken, SHA256SUMS: `${sha256(broken)}  ${ARTIFACT}\n` };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, "the new binary does not run here (--version said: cannot execute: wrong libc)", "not installed");
    expectNothingLeft(c);
  }, T);

  test("a verified binary that does not run here leaves the old one in place", async () => {
    files = release("9.9.9");
    const c = newCase();
    expect((await install(c, ["--download", ...into(c)])).code).toBe(0);
    const before = statSync(join(c.prefix, "bin", "tidegate")).ino;
    const broken = "#!/bin/sh\nexit 126\n";
    files = { [ARTIFACT]: broken, SHA256SUMS: `${sha256(broken)}  ${ARTIFACT}\n` };
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, "the new binary does not run here", "not installed");
    expectInstalled(c, release("9.9.9")[ARTIFACT]!);
    expect(statSync(join(c.prefix, "bin", "tidegate")).ino).toBe(before);
  }, T);

  test("the binary missing (404): names the file and its URL", async () => {
    files = { SHA256SUMS: release().SHA256SUMS! };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, `${ARTIFACT} not found: ${BASE}/${ARTIFACT} answered HTTP 404`);
    expect(requests).toEqual(["SHA256SUMS", ARTIFACT]);
    expectNothingLeft(c);
  }, T);

  test("SHA256SUMS missing (404): names it and its URL, the binary is never fetched", async () => {
    files = { [ARTIFACT]: release()[ARTIFACT]! };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, `SHA256SUMS not found: ${BASE}/SHA256SUMS answered HTTP 404`);
    expect(requests).toEqual(["SHA256SUMS"]);
    expectNothingLeft(c);
  }, T);

  test("SHA256SUMS without a line for this machine's file", async () => {
    files = { ...release(), SHA256SUMS: `${"0".repeat(64)}  tidegate-linux-other\n` };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)]);
    expectFailure(r, `${BASE}/SHA256SUMS has no line for ${ARTIFACT}`, "not installed");
    expect(requests).toEqual(["SHA256SUMS"]);
    expectNothingLeft(c);
  }, T);

  test("server unreachable: names the base URL and TIDEGATE_DOWNLOAD_URL", async () => {
    const base = `http://127.0.0.1:${freePort("127.0.0.1")}`;
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { base });
    expectFailure(r, `cannot reach ${base} to download SHA256SUMS`, "TIDEGATE_DOWNLOAD_URL");
    expectNothingLeft(c);
  }, T);

  test("with wget, a missing file names the file and its URL", async () => {
    files = { SHA256SUMS: release().SHA256SUMS! };
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { path: pathWithout("curl") });
    expectFailure(r, `${ARTIFACT} not downloaded: ${BASE}/${ARTIFACT} answered an HTTP error`);
    expectNothingLeft(c);
  }, T);

  test("neither curl nor wget: says so before anything else", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { path: pathWithout("curl", "wget") });
    expectFailure(r, "neither curl nor wget is installed");
    expect(requests).toEqual([]);
    expectNothingLeft(c);
  }, T);

  test("no sha256sum, shasum or openssl: refuses to install unverified", async () => {
    files = release();
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { path: pathWithout("sha256sum", "shasum", "openssl") });
    expectFailure(r, "none of sha256sum, shasum or openssl is installed");
    expect(requests).toEqual([]);
    expectNothingLeft(c);
  }, T);

  test("an unsupported architecture is named, nothing fetched", async () => {
    files = release();
    const fake = join(ROOT, "fake-uname");
    mkdirSync(fake, { recursive: true, mode: 0o755 });
    writeFileSync(join(fake, "uname"), '#!/bin/sh\ncase "${1:-}" in -m) echo mips64 ;; *) echo Linux ;; esac\n', { mode: 0o755 });
    const c = newCase();
    const r = await install(c, ["--download", ...into(c)], { path: `${fake}:${PATH}` });
    expectFailure(r, "unsupported architecture 'mips64'", "x86_64", "aarch64");
    expect(requests).toEqual([]);
    expectNothingLeft(c);
  }, T);
});

describe("without root", () => {
  test("a prefix it cannot write is refused before anything is fetched", async () => {
    files = release();
    const c = newCase({ unprivileged: true });
    const ro = join(c.dir, "read-only");
    mkdirSync(ro, { mode: 0o555 });
    const prefix = join(ro, "prefix");
    const r = await install(c, ["--download", "--prefix", prefix, "--unit-dir", c.unit], { unprivileged: true });
    expectFailure(r, `cannot write ${prefix}/bin`, "--prefix");
    expect(requests).toEqual([]);
    expect(existsSync(prefix)).toBe(false);
    expectNothingLeft(c);
  }, T);

  test("a writable prefix is enough: the binary is installed, an unwritable unit folder skipped with a notice", async () => {
    files = release();
    const c = newCase({ unprivileged: true });
    const ro = join(c.dir, "read-only");
    mkdirSync(ro, { mode: 0o555 });
    mkdirSync(c.prefix, { mode: 0o755 });
    if (ROOT_UID) chownSync(c.prefix, 65534, 65534);
    const r = await install(c, ["--download", "--prefix", c.prefix, "--unit-dir", join(ro, "units")], { unprivileged: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`install: ${ro}/units is not writable by this user: no systemd unit will be written`);
    expectInstalled(c, files[ARTIFACT] as string);
    expect(readdirSync(ro)).toEqual([]);
  }, T);

  test("--enable with an unwritable unit folder fails before anything is fetched", async () => {
    files = release();
    const c = newCase({ unprivileged: true });
    const ro = join(c.dir, "read-only");
    mkdirSync(ro, { mode: 0o555 });
    const r = await install(c, ["--download", "--enable", "--prefix", c.prefix, "--unit-dir", join(ro, "units")], { unprivileged: true });
    expectFailure(r, `--enable needs the unit, but ${ro}/units is not writable`);
    expect(requests).toEqual([]);
    expectNothingLeft(c);
  }, T);

  // Checkout mode as root would install Debian packages: these run unprivileged, where it stops at once.
  test("a copy beside package.json, src/ and bpf/ is a checkout: it builds from source, which needs root", async () => {
    files = release();
    const c = newCase({ unprivileged: true });
    const script = fakeCheckout(join(c.dir, "checkout"));
    const r = await install(c, into(c), { script, unprivileged: true });
    expect(r.stderr).toContain("run from a checkout: building from source");
    expectFailure(r, "building from source needs root");
    expect(requests).toEqual([]);
    expectNothingLeft(c);

    mkdirSync(c.prefix, { mode: 0o755 });
    mkdirSync(c.unit, { mode: 0o755 });
    if (ROOT_UID) for (const d of [c.prefix, c.unit]) chownSync(d, 65534, 65534);
    const forced = await install(c, ["--download", ...into(c)], { script, unprivileged: true });
    expect(forced.code).toBe(0);
    expect(forced.stderr).not.toContain("building from source");
    expectInstalled(c, files[ARTIFACT] as string);
  }, T);

  test("piped into sh -s in a checkout's folder, it still downloads: $0 is the shell, not the script", async () => {
    files = release();
    const c = newCase({ unprivileged: true });
    fakeCheckout(c.cwd);
    mkdirSync(c.prefix, { mode: 0o755 });
    if (ROOT_UID) chownSync(c.prefix, 65534, 65534);
    const r = await install(c, ["--no-unit", ...into(c)], { piped: true, unprivileged: true });
    expect(r.stderr).not.toContain("building from source");
    expect(r.code).toBe(0);
    expect(requests).toEqual(["SHA256SUMS", ARTIFACT]);
    expectInstalled(c, files[ARTIFACT] as string);
  }, T);
});

// The release layout `bun run build` publishes in dist/. CI builds before the tests, so there it
// must exist; elsewhere a missing build skips these with a warning.
describe("the real build", () => {
  const built = existsSync(join(DIST, ARTIFACT));
  const skip = !built && !process.env.CI;
  if (skip) console.warn(`install.test: ${join(DIST, ARTIFACT)} is missing, skipping the real build's tests: run 'bun run build'`);

  test.skipIf(skip)(`dist/SHA256SUMS holds sha256sum's line for dist/${ARTIFACT}, which is dist/tidegate`, () => {
    expect(existsSync(join(DIST, ARTIFACT))).toBe(true);
    const r = Bun.spawnSync(["sha256sum", ARTIFACT], { cwd: DIST, stdout: "pipe" });
    expect(r.exitCode).toBe(0);
    const sums = readFileSync(join(DIST, "SHA256SUMS"), "utf8");
    expect(sums.split("\n")).toContain(r.stdout.toString().trimEnd());
    expect(sha256(readFileSync(join(DIST, "tidegate")))).toBe(r.stdout.toString().split(" ")[0]!);
  }, T);

  test.skipIf(skip)("install.sh installs it from a server serving dist/", async () => {
    files = { SHA256SUMS: Bun.file(join(DIST, "SHA256SUMS")), [ARTIFACT]: Bun.file(join(DIST, ARTIFACT)) };
    const c = newCase();
    const r = await install(c, ["--download", "--no-unit", ...into(c)]);
    expect(r.code).toBe(0);
    const bin = join(c.prefix, "bin", "tidegate");
    expect(sha256(readFileSync(bin))).toBe(sha256(readFileSync(join(DIST, ARTIFACT))));
    const version = Bun.spawnSync([bin, "--version"], { stdout: "pipe" }).stdout.toString().trim();
    expect(version).toMatch(/^tidegate \d+\.\d+\.\d+ \(/);
    expect(r.stderr).toContain(`install: installed ${bin}: ${version}`);
    expect(readdirSync(c.tmp)).toEqual([]);
  }, T);
});
