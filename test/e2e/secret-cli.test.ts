// `tidegate secret set|list|rm` on the built binary, each test with its own --state-dir: values in
// from stdin, a file or a terminal (a real pty, echo off), never from argv, never printed; root only.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireBinary, REPO, type RunResult } from "../helpers/binary.ts";
import { SecretStore } from "../../src/secrets/index.ts";

const T = 20_000;
const root = mkdtempSync(join(tmpdir(), "tidegate-test-secret-cli-"));
chmodSync(root, 0o755);
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const stateDir = () => join(root, `state-${++n}`);
const VALUE = "ghp_canary-0123456789abcdef";

async function run(args: readonly string[], opts: { stdin?: string; prefix?: readonly string[]; env?: Record<string, string> } = {}): Promise<RunResult> {
  const proc = Bun.spawn([...(opts.prefix ?? []), requireBinary(), ...args], {
    cwd: REPO,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...opts.env },
    stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  for (const text of [stdout, stderr]) expect(text).not.toContain("canary");
  return { code, stdout, stderr };
}

const stored = (state: string, name: string) => SecretStore.open(join(state, "secrets")).get(name);

describe("tidegate secret", () => {
  test("set from stdin (one trailing newline removed), replace, list, list --json, rm", async () => {
    const s = stateDir();
    const a = await run(["--state-dir", s, "secret", "set", "github_token"], { stdin: `${VALUE}\n` });
    expect(a).toEqual({ code: 0, stdout: `secret github_token stored in ${s}/secrets\n`, stderr: "" });
    expect(stored(s, "github_token")).toBe(VALUE);
    expect(statSync(join(s, "secrets")).mode & 0o777).toBe(0o700);
    expect(statSync(join(s, "secrets", "key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(s, "secrets", "secrets.json")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(s, "secrets", "secrets.json"), "utf8")).not.toContain("canary");

    const b = await run(["secret", "set", "--state-dir", s, "a.second-one"], { stdin: `${VALUE}-2` });
    expect(b.code).toBe(0);
    const again = await run(["--state-dir", s, "secret", "set", "github_token"], { stdin: `${VALUE}-3\r\n` });
    expect(again.stdout).toBe(`secret github_token replaced in ${s}/secrets\n`);
    expect(stored(s, "github_token")).toBe(`${VALUE}-3`);

    const list = await run(["--state-dir", s, "secret", "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^NAME {10}CHANGED\na\.second-one {2}\d{4}-\d\d-\d\dT[\d:.]+Z\ngithub_token {2}\d{4}-\d\d-\d\dT[\d:.]+Z\n$/);
    const json = await run(["--state-dir", s, "secret", "list", "--json"]);
    const parsed = JSON.parse(json.stdout) as { secrets: { name: string; changed_at: string }[] };
    expect(parsed.secrets.map((x) => x.name)).toEqual(["a.second-one", "github_token"]);
    expect(Object.keys(parsed.secrets[0]!).sort()).toEqual(["changed_at", "name"]);

    expect(await run(["--state-dir", s, "secret", "rm", "github_token"])).toEqual({ code: 0, stdout: `secret github_token removed from ${s}/secrets\n`, stderr: "" });
    const gone = await run(["--state-dir", s, "secret", "rm", "github_token"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`tidegate secret rm: secrets: ${s}/secrets holds no secret github_token [secret_not_found]\n`);
    expect((await run(["--state-dir", s, "secret", "list", "--json"])).stdout).toContain('"a.second-one"');
  }, T);

  test("set and rm tell the agent on <run-dir>/agent.sock; a socket nobody serves is quiet; an agent that fails or hangs gets a note, and the change is stored anyway", async () => {
    // The real agent's side (the next request carries the change) is test/e2e/intercept.test.ts's;
    // here a stand-in on the socket records what the CLI sends and answers as told.
    const s = stateDir();
    const runDir = join(root, `run-${n}`);
    mkdirSync(runDir, { mode: 0o700 });
    const sock = join(runDir, "agent.sock");
    const flags = ["--state-dir", s, "--run-dir", runDir];
    const asked: string[] = [];
    let answer: "ok" | "fail" | "hang" = "ok";
    const agent = Bun.serve({
      unix: sock,
      async fetch(req) {
        asked.push(`${req.method} ${new URL(req.url).pathname}`);
        if (answer === "hang") await Bun.sleep(5000);
        return answer === "ok" ? Response.json({ noticed: true }) : Response.json({ error: { code: "boom", message: "boom" } }, { status: 500 });
      },
    });
    try {
      const set = await run([...flags, "secret", "set", "api"], { stdin: VALUE });
      expect(set).toEqual({ code: 0, stdout: `secret api stored in ${s}/secrets\n`, stderr: "" });
      expect(asked).toEqual(["POST /v1/secrets/changed"]);
      const rm = await run([...flags, "secret", "rm", "api"]);
      expect(rm).toEqual({ code: 0, stdout: `secret api removed from ${s}/secrets\n`, stderr: "" });
      expect(asked).toEqual(["POST /v1/secrets/changed", "POST /v1/secrets/changed"]);
      // list changes nothing: nothing to tell
      await run([...flags, "secret", "list"]);
      expect(asked).toHaveLength(2);

      answer = "fail";
      const failed = await run([...flags, "secret", "set", "api"], { stdin: VALUE });
      expect(failed.code).toBe(0);
      expect(failed.stderr).toBe(`secret: the agent at ${sock} answered 500; the running agent uses the change within 1 s\n`);
      expect(stored(s, "api")).toBe(VALUE);

      answer = "hang";
      const started = performance.now();
      const hung = await run([...flags, "secret", "rm", "api"]);
      expect(hung.code).toBe(0);
      expect(hung.stderr).toBe(`secret: the agent at ${sock} did not answer within 2 s; the running agent uses the change within 1 s\n`);
      expect(performance.now() - started).toBeLessThan(4500); // did not wait for the stand-in's 5 s
      expect(stored(s, "api")).toBeNull();
    } finally {
      agent.stop(true);
    }
    // the socket file left behind with nobody serving it: a gone agent, nothing to say
    if (!existsSync(sock)) writeFileSync(sock, "");
    const quiet = await run([...flags, "secret", "set", "api"], { stdin: VALUE });
    expect(quiet).toEqual({ code: 0, stdout: `secret api stored in ${s}/secrets\n`, stderr: "" });
  }, T);

  test("set --from-file", async () => {
    const s = stateDir();
    const file = join(root, `value-${n}.txt`);
    writeFileSync(file, `${VALUE}\n`, { mode: 0o600 });
    const r = await run(["--state-dir", s, "secret", "set", "--from-file", file, "api"]);
    expect(r.code).toBe(0);
    expect(stored(s, "api")).toBe(VALUE);
    const missing = await run(["--state-dir", s, "secret", "set", "api", "--from-file", "/nonexistent/value"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("[input_unreadable]");
  }, T);

  test("an empty store lists as empty", async () => {
    const s = stateDir();
    expect((await run(["--state-dir", s, "secret", "list"])).stdout).toBe(`no secrets in ${s}/secrets\n`);
    expect(JSON.parse((await run(["--state-dir", s, "secret", "list", "--json"])).stdout)).toEqual({ secrets: [] });
    expect(existsSync(s)).toBe(false);
  }, T);

  test("a value on the command line is refused as a usage error, not echoed, nothing stored", async () => {
    const s = stateDir();
    const r = await run(["--state-dir", s, "secret", "set", "api", VALUE], { stdin: "other\n" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("never the command line");
    expect(r.stderr).toContain("--help");
    const asName = await run(["--state-dir", s, "secret", "set", `${VALUE}=x`], { stdin: "other\n" });
    expect(asName.code).toBe(2);
    expect(asName.stderr).toContain("is not repeated");
    expect(existsSync(s)).toBe(false);
  }, T);

  test("refused values: empty stdin, a control character, too long; errors name the secret only", async () => {
    const s = stateDir();
    for (const [stdin, needle] of [["", "is empty"], [`${VALUE}\nsecond`, "control character"], [VALUE.repeat(700), "more than 16384"]] as const) {
      const r = await run(["--state-dir", s, "secret", "set", "api"], { stdin });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(needle);
      expect(r.stderr).toContain("[secret_bad_value]");
    }
  }, T);

  test("--instance moves the store (TIDEGATE_INSTANCE too)", async () => {
    const instance = `tidegate-test-${Math.random().toString(36).slice(2, 8)}`;
    const place = `/var/lib/tidegate-${instance}`;
    try {
      expect((await run(["--instance", instance, "secret", "set", "api"], { stdin: VALUE })).stdout).toBe(`secret api stored in ${place}/secrets\n`);
      expect((await run(["secret", "list"], { env: { TIDEGATE_INSTANCE: instance } })).stdout).toContain("api");
    } finally {
      rmSync(place, { recursive: true, force: true });
    }
  }, T);

  test("eight writers at once lose nothing", async () => {
    const s = stateDir();
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => run(["--state-dir", s, "secret", "set", `k${i}`], { stdin: `v${i}` })));
    expect(results.map((r) => r.code)).toEqual(Array(8).fill(0));
    const store = SecretStore.open(join(s, "secrets"));
    expect(store.names()).toEqual(["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"]);
    for (let i = 0; i < 8; i++) expect(store.get(`k${i}`)).toBe(`v${i}`);
  }, T);

  // Needs root (to drop to nobody) and setpriv; in CI (root) it runs unless setpriv is missing.
  const setpriv = Bun.which("setpriv");
  const skipNonRoot = setpriv === null || (process.getuid?.() !== 0 && !process.env.CI);
  if (skipNonRoot) console.warn(`secret-cli: "non-root is refused" skipped (needs root and setpriv; root: ${process.getuid?.() === 0}, setpriv: ${setpriv !== null})`);
  test.skipIf(skipNonRoot)("a user other than root is refused, before reading any value", async () => {
    const s = stateDir();
    expect((await run(["--state-dir", s, "secret", "set", "api"], { stdin: VALUE })).code).toBe(0);
    const nobody = [setpriv!, "--reuid=65534", "--regid=65534", "--clear-groups"];
    for (const args of [["secret", "set", "api"], ["secret", "list"], ["secret", "rm", "api"]]) {
      const r = await run(["--state-dir", s, ...args], { stdin: `${VALUE}-new`, prefix: nobody });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("only root manages secrets");
      expect(r.stderr).toEndWith("[secret_not_root]\n");
    }
    expect(stored(s, "api")).toBe(VALUE);
    expect((await run(["secret", "set", "--help"], { prefix: nobody })).code).toBe(0);
  }, T);
});

// Drives the binary through a real pseudo-terminal: waits for the prompt, types KEYS, and reports
// the exit code, everything the terminal showed, and the terminal's modes after the exit.
const PTY_DRIVER = `
import json, os, select, subprocess, sys, termios, time
keys = sys.argv[1].encode("latin1").decode("unicode_escape").encode("latin1")
m, s = os.openpty()
p = subprocess.Popen(sys.argv[2:], stdin=s, stdout=s, stderr=s, start_new_session=True)
os.close(s)
out = b""
def pump(until, timeout):
    global out
    end = time.time() + timeout
    while (until is None or until not in out) and time.time() < end:
        if select.select([m], [], [], 0.05)[0]:
            try:
                chunk = os.read(m, 4096)
            except OSError:
                return
            if not chunk:
                return
            out += chunk
pump(b"Enter ends it): ", 10)
os.write(m, keys)
code = None
end = time.time() + 10
while code is None and time.time() < end:
    pump(None, 0.05)
    code = p.poll()
attrs = termios.tcgetattr(m)
pump(None, 0.2)
print(json.dumps({"code": code, "output": out.decode("latin1"), "echo": bool(attrs[3] & termios.ECHO), "icanon": bool(attrs[3] & termios.ICANON)}))
`;

describe("tidegate secret set on a terminal", () => {
  const python = Bun.which("python3");
  if (python === null) console.warn("secret-cli: terminal tests skipped (needs python3 for its pty module)");
  const driver = join(root, "pty-driver.py");
  writeFileSync(driver, PTY_DRIVER);

  async function typeInto(keys: string, args: string[]): Promise<{ code: number; output: string; echo: boolean; icanon: boolean }> {
    const proc = Bun.spawn([python!, driver, keys, requireBinary(), ...args], { stdout: "pipe", stderr: "pipe", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (err !== "") throw new Error(`pty driver: ${err}`);
    return JSON.parse(out);
  }

  test.skipIf(python === null)("the value is typed at a prompt that does not echo it; Backspace edits; the terminal is restored", async () => {
    const s = stateDir();
    const r = await typeInto(`${VALUE}X\\x7f\\r`, ["--state-dir", s, "secret", "set", "api"]);
    expect(r.code).toBe(0);
    expect(r.output).toStartWith("value of api (not shown; Enter ends it): ");
    expect(r.output).toContain(`secret api stored in ${s}/secrets`);
    expect(r.output).not.toContain("canary");
    expect(r.echo && r.icanon).toBe(true);
    expect(stored(s, "api")).toBe(VALUE);
  }, T);

  test.skipIf(python === null)("Ctrl-C at the prompt stores nothing: secret_input_aborted, terminal restored", async () => {
    const s = stateDir();
    const r = await typeInto("abc\\x03", ["--state-dir", s, "secret", "set", "api"]);
    expect(r.code).toBe(1);
    expect(r.output).toContain("[secret_input_aborted]");
    expect(r.output).not.toContain("abc");
    expect(r.echo && r.icanon).toBe(true);
    expect(existsSync(join(s, "secrets", "secrets.json"))).toBe(false);
  }, T);
});
