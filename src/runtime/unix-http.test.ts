import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { callUnix, nobodyListens, serveUnix } from "./unix-http.ts";

const dir = mkdtempSync(join(tmpdir(), "tidegate-unix-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("serves JSON on a 0600 socket in a 0700 directory", async () => {
  const path = join(dir, "run", "x.sock");
  const s = serveUnix(path, async (req) => Response.json({ method: req.method, path: new URL(req.url).pathname, body: req.body ? await req.json() : null }));
  try {
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o700);
    const r = await callUnix(path, "the test server", "POST", "/v1/echo", { a: 1 });
    expect(r).toEqual({ status: 200, body: { method: "POST", path: "/v1/echo", body: { a: 1 } } });
  } finally {
    await s.stop();
  }
});

test("a handler's uncaught error answers a bare 500: its message and stack never leave the process", async () => {
  // In a process of its own: bun test counts an error thrown in a server's handler against the test.
  const path = join(dir, "run", "throws.sock");
  const script = `
    import { serveUnix } from ${JSON.stringify(join(import.meta.dir, "unix-http.ts"))};
    const s = serveUnix(${JSON.stringify(path)}, () => { throw new Error("no such key at /etc/tidegate/secret-key-file"); });
    const r = await fetch("http://localhost/v1/status", { unix: ${JSON.stringify(path)} });
    console.log(JSON.stringify({ status: r.status, type: r.headers.get("content-type"), text: await r.text() }));
    await s.stop();
  `;
  const p = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
  // (its exit code is 1: Bun reports the handler's error on stderr, and the server serves on)
  const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  const r = JSON.parse(out);
  expect(r.status).toBe(500);
  expect(r.type).not.toContain("html");
  expect(r.text).not.toContain("secret-key-file");
  expect(r.text).not.toContain("unix-http");
});

test("a missing socket is socket_unreachable naming the process", async () => {
  const err = await callUnix(join(dir, "none.sock"), "the agent", "GET", "/v1/status").catch((e) => e);
  expect(err.code).toBe("socket_unreachable");
  expect(err.message).toContain("cannot reach the agent");
});

test("nobodyListens: a missing socket and a file nobody serves (a process that is gone) are; a timeout and other errors are not", async () => {
  const missing = await callUnix(join(dir, "gone.sock"), "the agent", "GET", "/v1/status").catch((e) => e);
  expect(missing.message).toContain("is it running?");
  expect(nobodyListens(missing)).toBe(true);
  const left = join(dir, "left.sock");
  writeFileSync(left, "");
  const stale = await callUnix(left, "the agent", "GET", "/v1/status").catch((e) => e);
  expect(stale.code).toBe("socket_unreachable");
  expect(nobodyListens(stale)).toBe(true);
  const path = join(dir, "run", "slow.sock");
  const s = serveUnix(path, async () => (await Bun.sleep(1000), new Response("late")));
  try {
    const timedOut = await callUnix(path, "the agent", "GET", "/v1/status", undefined, AbortSignal.timeout(50)).catch((e) => e);
    expect(timedOut.code).toBe("socket_unreachable");
    expect(nobodyListens(timedOut)).toBe(false);
  } finally {
    await s.stop();
  }
  expect(nobodyListens(new Error("other"))).toBe(false);
  expect(nobodyListens(null)).toBe(false);
});

test("a regular file in the socket's place is refused, not removed", () => {
  const path = join(dir, "file.sock");
  writeFileSync(path, "keep me");
  expect(() => serveUnix(path, () => new Response())).toThrow(expect.objectContaining({ code: "socket_path_taken" }));
  expect(statSync(path).isFile()).toBe(true);
});

test("an existing socket folder keeps at most 0711: read and write for group and others go, traverse stays", async () => {
  for (const [before, after] of [[0o755, 0o711], [0o710, 0o710], [0o700, 0o700], [0o777, 0o711], [0o711, 0o711]] as const) {
    const folder = join(dir, `perm-${before.toString(8)}`);
    mkdirSync(folder);
    chmodSync(folder, before);
    const s = serveUnix(join(folder, "x.sock"), () => new Response());
    try {
      expect(statSync(folder).mode & 0o777).toBe(after);
    } finally {
      await s.stop();
    }
  }
});
