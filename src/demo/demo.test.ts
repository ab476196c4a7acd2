import { describe, expect, test } from "bun:test";
import { loadPolicy } from "../policy/index.ts";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO, demoConfig, markInstance, othersCannotRun, printable, unmarkInstance, unsafeParent } from "./demo.ts";
import { forecastFor, startForecastApi } from "./forecast-api.ts";

describe("demoConfig", () => {
  test("loads as a policy: two workloads, the API rule with injection, the stdio rule denying delete_*", () => {
    const p = loadPolicy(demoConfig({ apiPort: 4443, caFile: "/tmp/ca.pem" }), "demo.yaml");
    expect(p.trustDomain.name).toBe(DEMO.trustDomain);
    expect(p.workloads.map((w) => [w.name, w.id.toString(), w.user])).toEqual([
      [DEMO.agent.workload, DEMO.agent.id, DEMO.agent.user],
      [DEMO.server.workload, DEMO.server.id, DEMO.server.user],
    ]);
    expect(p.workloads[1]!.runBy.users).toEqual([DEMO.agent.user]);
    expect(p.egress).toHaveLength(1);
    const rule = p.egress[0]!;
    expect([rule.name, rule.action]).toEqual([DEMO.egressRule, "intercept"]);
    expect(JSON.stringify(rule)).toContain(DEMO.secret);
    expect(p.stdio.map((r) => r.name)).toEqual([DEMO.stdioRule]);
    expect(p.dns.hosts.get(DEMO.apiName)?.map((a) => a.text)).toEqual([DEMO.address]);
  });
});

describe("othersCannotRun", () => {
  const modes: Record<string, number> = { "/": 0o755, "/opt": 0o755, "/opt/tg": 0o700, "/usr": 0o755, "/usr/bin": 0o755, "/usr/bin/tg": 0o755, "/usr/bin/ro": 0o644, "/usr/bin/secret": 0o700 };
  const stat = (p: string) => ({ mode: modes[p] ?? 0 });
  test("a binary every folder above lets others enter, readable and executable: fine", () => {
    expect(othersCannotRun("/usr/bin/tg", true, stat)).toBeNull();
  });
  test("a folder others cannot search is named", () => {
    modes["/opt/tg/tidegate"] = 0o755;
    expect(othersCannotRun("/opt/tg/tidegate", true, stat)).toContain("/opt/tg is not searchable");
  });
  test("a file others cannot execute is refused when it must run, fine when it is only read", () => {
    expect(othersCannotRun("/usr/bin/ro", true, stat)).toContain("not readable and executable");
    expect(othersCannotRun("/usr/bin/ro", false, stat)).toBeNull();
    expect(othersCannotRun("/usr/bin/secret", false, stat)).toContain("not readable by other users");
  });
});

describe("the stand-in forecast API", () => {
  test("forecasts are deterministic", () => {
    expect(forecastFor("Lisbon")).toEqual(forecastFor("Lisbon"));
    expect(forecastFor("Lisbon").city).toBe("Lisbon");
  });

  test("serves TLS under its own CA, answers only the right bearer token, and counts", async () => {
    const api = await startForecastApi({ hostname: "api.forecast.test", address: "127.0.0.1", token: "s3cret-token" });
    try {
      const url = `https://127.0.0.1:${api.port}/v1/forecast?city=Porto`;
      const tls = { ca: api.caPem, serverName: "api.forecast.test" };
      const ok = await fetch(url, { headers: { authorization: "Bearer s3cret-token" }, tls } as RequestInit);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual(forecastFor("Porto"));
      for (const auth of ["Bearer s3cret-tokeN", "Bearer s3cret-toke", "s3cret-token", ""]) {
        const r = await fetch(url, { headers: auth ? { authorization: auth } : {}, tls } as RequestInit);
        expect(r.status).toBe(401);
        expect(await r.text()).not.toContain("s3cret");
      }
      expect(api.seen).toEqual({ authorized: 1, refused: 4 });
      // Without the demo CA the certificate is not trusted: the rule's ca: file is what makes it work.
      await expect(fetch(url, { headers: { authorization: "Bearer s3cret-token" } })).rejects.toThrow();
    } finally {
      api.stop();
    }
  });
});

describe("the demo's instance markers", () => {
  test("a marker holds the pid; the folder goes with the last marker, not before", () => {
    const parent = mkdtempSync(join(tmpdir(), "tidegate-test-markers-"));
    const folder = join(parent, "markers");
    try {
      const a = markInstance("one", folder);
      expect(a).toBe(join(folder, "one"));
      expect(readFileSync(a, "utf8")).toBe(`${process.pid}\n`);
      expect(statSync(a).mode & 0o777).toBe(0o600);
      expect(statSync(folder).mode & 0o777).toBe(0o700);
      markInstance("two", folder);
      unmarkInstance("one", folder);
      expect(existsSync(a)).toBe(false);
      expect(existsSync(join(folder, "two"))).toBe(true);
      unmarkInstance("two", folder);
      expect(existsSync(folder)).toBe(false);
      // Removing again, or a marker never made, is not an error.
      unmarkInstance("two", folder);
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("unsafeParent", () => {
  const st = (uid: number, mode: number) => () => ({ uid, mode });
  test("root's folder that only root may change, or any sticky folder, is safe", () => {
    expect(unsafeParent("/x", st(0, 0o40755))).toBeNull();
    expect(unsafeParent("/tmp", st(0, 0o41777))).toBeNull();
    expect(unsafeParent("/x", st(1000, 0o41777))).toBeNull();
  });
  test("a folder another user owns, or others may write without the sticky bit, is not", () => {
    expect(unsafeParent("/home/u/tmp", st(1000, 0o40700))).toContain("owned by uid 1000");
    expect(unsafeParent("/x", st(0, 0o40777))).toContain("writable by other users");
    expect(unsafeParent("/missing", () => {
      throw new Error("ENOENT");
    })).toBe("it does not exist");
  });
});

describe("printable", () => {
  test("a workload's text cannot send escape sequences to the terminal", () => {
    expect(printable("ok\u001b[2J\u0007done\nnext")).toBe("ok?[2J?done?next");
    expect(printable("x".repeat(400))).toHaveLength(300);
  });
});
