// decideRequest (request-policy.ts) over parsed requests and a loaded policy: the headers that go
// upstream, the secrets named, and each refusal's status and reason, with names admitted from the
// cache without a look-up (admitNow) or through one.
import { describe, expect, test } from "bun:test";
import { loadPolicy } from "../../policy/load.ts";
import { PolicyEngine } from "../../policy/engine.ts";
import { NameCache } from "../../policy/name-cache.ts";
import { parseIp } from "../../policy/address.ts";
import { SpiffeId } from "../../spiffe/index.ts";
import { RequestParser } from "../../http1/request-parser.ts";
import type { RequestHead } from "../../http1/index.ts";
import { TidegateError } from "../../errors.ts";
import { decideRequest, type RequestDeps } from "./request-policy.ts";

const engine = new PolicyEngine(
  loadPolicy(
    `trust_domain: example.org
egress:
  - name: no-admin
    from: spiffe://example.org/w
    to: { host: api.test, port: 80 }
    action: deny
    http: { paths: ["/admin/**"] }
  - name: api
    from: spiffe://example.org/w
    to: { host: api.test, port: 80 }
    action: intercept
    inject: { headers: { Authorization: "Bearer \${secret:tok}", X-Key: "\${secret:tok}-\${secret:key}" } }
  - name: ws
    from: spiffe://example.org/w
    to: { host: ws.test, port: 80 }
    action: intercept
    upgrade: [websocket]
  - name: listed
    from: spiffe://example.org/w
    to: { host: listed.test, port: 80 }
    action: intercept
    inject: { headers: { X-Key: "\${secret:key}" }, placeholder_headers: [X-Custom-Auth] }
  - name: defaults
    from: spiffe://example.org/w
    to: { host: defaults.test, port: 80 }
    action: intercept
    inject: { headers: { X-Key: "\${secret:key}" } }
  - name: none
    from: spiffe://example.org/w
    to: { host: none.test, port: 80 }
    action: intercept
    inject: { headers: { X-Key: "\${secret:key}" }, placeholder_headers: [] }
  - name: by-address
    from: spiffe://example.org/w
    to: { cidr: 192.0.2.50/32, port: 80 }
    action: intercept
    inject: { headers: { Authorization: "Bearer \${secret:tok}" } }
dns:
  hosts:
    api.test: [192.0.2.10]
    ws.test: [192.0.2.11]
    listed.test: [192.0.2.12]
    none.test: [192.0.2.13]
    defaults.test: [192.0.2.14]
`,
    "r.yaml",
  ),
);
const ctx = (address = "192.0.2.10") => ({ from: SpiffeId.parse("spiffe://example.org/w"), address: parseIp(address), port: 80, sni: null });
const head = (text: string): RequestHead => {
  const e = new RequestParser().push(new TextEncoder().encode(text)).find((x) => x.kind === "head");
  if (e?.kind !== "head") throw new Error("no head");
  return e.head;
};
const secrets: Record<string, string> = { tok: "T0K", key: "K3Y" };
const cached = new NameCache({ hosts: new Map([["api.test", [parseIp("192.0.2.10")]], ["ws.test", [parseIp("192.0.2.11")]], ["listed.test", [parseIp("192.0.2.12")]], ["none.test", [parseIp("192.0.2.13")]], ["defaults.test", [parseIp("192.0.2.14")]]]), lookup: async () => ({ addresses: [], ttl: 30 }) });
/** A resolver without peek: every name goes through an asynchronous look-up. */
const lookedUp = { asked: 0, async resolve(name: string) { this.asked++; return name === "api.test" ? [parseIp("192.0.2.10")] : [parseIp("192.0.2.11")]; } };
const deps = (names: RequestDeps["names"] extends () => infer N ? N : never, s = secrets): RequestDeps => ({ engine: () => engine, names: () => names, secret: (n) => s[n] ?? null });

describe("decideRequest", () => {
  for (const [how, names] of [["from the cache (no look-up)", cached], ["through a look-up", lookedUp]] as const) {
    test(`injected headers replace the workload's, each secret named once (${how})`, async () => {
      const v = await decideRequest(ctx(), head("GET /b?q=1 HTTP/1.1\r\nHost: api.test\r\nauthorization: mine\r\nX-Other: 1\r\n\r\n"), deps(names));
      expect(v).toMatchObject({ ok: true, name: "api.test", path: "/b", secrets: ["tok", "key"] });
      if (!v.ok) return;
      expect(v.headers).toEqual([["Host", "api.test"], ["X-Other", "1"], ["Authorization", "Bearer T0K"], ["X-Key", "T0K-K3Y"]]);
      expect(v.upstream).toMatchObject({ port: 80, serverName: "api.test" });
    });
  }

  test("a method with a lowercase letter is refused 400 bad_method: no rule's methods can name it, and a server that upper-cases it would take it for one", async () => {
    for (const m of ["delete", "Delete", "gEt"]) {
      expect(await decideRequest(ctx(), head(`${m} /b HTTP/1.1\r\nHost: api.test\r\n\r\n`), deps(cached))).toMatchObject({ ok: false, status: 400, reason: "bad_method" });
    }
    expect(await decideRequest(ctx(), head("M-SEARCH_2 /b HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached))).toMatchObject({ ok: true });
  });

  test("a Host port other than the one dialled: 421 host_port_mismatch; the dialled one, or none, is decided", async () => {
    expect(await decideRequest(ctx(), head("GET /b HTTP/1.1\r\nHost: api.test:8443\r\n\r\n"), deps(cached))).toMatchObject({ ok: false, status: 421, reason: "host_port_mismatch" });
    expect(await decideRequest(ctx(), head("GET http://api.test:8443/b HTTP/1.1\r\nHost: api.test:8443\r\n\r\n"), deps(cached))).toMatchObject({ ok: false, status: 421, reason: "host_port_mismatch" });
    expect(await decideRequest(ctx(), head("GET /b HTTP/1.1\r\nHost: api.test:80\r\n\r\n"), deps(cached))).toMatchObject({ ok: true });
    expect(await decideRequest(ctx(), head("GET /b HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached))).toMatchObject({ ok: true });
  });

  test("a header that would have the upstream run another method or path is refused 400 (method_override, target_override)", async () => {
    const with_ = (h: string) => decideRequest(ctx(), head(`POST /b HTTP/1.1\r\nHost: api.test\r\n${h}\r\nContent-Length: 0\r\n\r\n`), deps(cached));
    for (const h of ["X-HTTP-Method-Override: DELETE", "x-http-method: delete", "X-Method-Override: PUT"]) expect(await with_(h)).toMatchObject({ ok: false, status: 400, reason: "method_override" });
    for (const h of ["X-Original-URL: /admin", "X-Rewrite-URL: /admin"]) expect(await with_(h)).toMatchObject({ ok: false, status: 400, reason: "target_override" });
    expect(await with_("X-HTTP-Method-Override: POST")).toMatchObject({ ok: true });
  });

  test("a path's segment parameters (\";...\") do not take it past a deny of its path; a \"..;\" segment is refused", async () => {
    const go = (target: string) => decideRequest(ctx(), head(`GET ${target} HTTP/1.1\r\nHost: api.test\r\n\r\n`), deps(cached));
    for (const t of ["/admin/users", "/admin;x/users", "/admin/users;jsessionid=1"]) expect(await go(t)).toMatchObject({ ok: false, status: 403, rule: "no-admin" });
    expect(await go("/public/..;/admin/users")).toMatchObject({ ok: false, status: 400, reason: "bad_path" });
    // decided without them, sent as it came
    expect(await go("/b;v=1")).toMatchObject({ ok: true, rule: { name: "api" }, path: "/b;v=1" });
  });

  test("a name the cache holds is not looked up; one it does not is", async () => {
    const before = lookedUp.asked;
    await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(lookedUp));
    expect(lookedUp.asked).toBe(before + 1);
    let resolved = 0;
    const spy = { peek: (n: string) => cached.peek(n), resolve: (n: string) => (resolved++, cached.resolve(n)) };
    const v = await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(spy));
    expect(v.ok).toBe(true);
    expect(resolved).toBe(0);
  });

  test("a name the cache holds is decided at once, without a promise; a look-up gives one", async () => {
    const now = decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached));
    expect(now).not.toBeInstanceOf(Promise);
    expect(now).toMatchObject({ ok: true, name: "api.test" });
    const later = decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(lookedUp));
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toMatchObject({ ok: true, name: "api.test" });
  });

  test("a look-up that fails is refused 502 dns_failed; any other error is thrown", async () => {
    const failing = { resolve: async () => { throw new TidegateError("dns_failed", "api.test: SERVFAIL"); } };
    expect(await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(failing))).toMatchObject({ ok: false, status: 502, reason: "dns_failed", rule: "api", name: "api.test" });
    const broken = { resolve: async () => { throw new RangeError("a bug"); } };
    await expect(decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(broken))).rejects.toThrow("a bug");
  });

  test("a Host that does not resolve to the dialled address: 403 address_not_resolved", async () => {
    const v = await decideRequest(ctx("192.0.2.99"), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached));
    expect(v).toMatchObject({ ok: false, status: 403, reason: "address_not_resolved" });
    expect(v.ok === false && v.detail).toBe("api.test resolves to 192.0.2.10, not to 192.0.2.99");
  });

  test("a secret the store does not hold: 503 secret_missing naming the first one missing, never a value", async () => {
    const v = await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached, { key: "K3Y" }));
    expect(v).toMatchObject({ ok: false, status: 503, reason: "secret_missing" });
    if (v.ok) return;
    expect(v.detail).toContain("secret tok");
    expect(JSON.stringify(v)).not.toContain("K3Y");
  });

  test("a placeholder for a secret the rule injects is swapped; one for another secret is refused", async () => {
    const ok = await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: tidegate-placeholder:key\r\n\r\n"), deps(cached));
    expect(ok.ok && ok.headers.find(([n]) => n === "X-Api-Key")).toEqual(["X-Api-Key", "K3Y"]);
    const no = await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: tidegate-placeholder:other\r\n\r\n"), deps(cached, { ...secrets, other: "0THER" }));
    expect(no).toMatchObject({ ok: false, status: 403, reason: "placeholder_not_allowed" });
  });

  /** The verdict on a GET to `host` (api.test, listed.test, none.test, defaults.test) with `lines` as its further header lines; the secrets read, by name. */
  const withHeaders = (host: string, ...lines: string[]) => {
    const read: string[] = [];
    const address = { "api.test": "192.0.2.10", "listed.test": "192.0.2.12", "none.test": "192.0.2.13", "defaults.test": "192.0.2.14" }[host]!;
    const d = { ...deps(cached), secret: (n: string) => (read.push(n), secrets[n] ?? null) };
    const v = decideRequest(ctx(address), head(`GET / HTTP/1.1\r\nHost: ${host}\r\n${lines.map((l) => `${l}\r\n`).join("")}\r\n`), d);
    if (v instanceof Promise) throw new Error("looked up");
    return { v, read };
  };

  test("by default a placeholder is swapped in Authorization, X-Api-Key and Api-Key only, in any case and anywhere in the value", () => {
    for (const h of ["Authorization", "authorization", "X-Api-Key", "x-api-key", "API-KEY", "Api-Key"]) {
      const { v } = withHeaders("defaults.test", `${h}: Bearer tidegate-placeholder:key`);
      expect(v).toMatchObject({ ok: true, rule: { name: "defaults" }, secrets: ["key"] });
      expect(v.ok && v.headers.find(([n]) => n === h)).toEqual([h, "Bearer K3Y"]);
    }
    for (const h of ["X-Request-Id", "X-Custom-Auth", "Cookie", "X-Api-Key2"]) {
      expect(withHeaders("defaults.test", `${h}: tidegate-placeholder:key`).v).toMatchObject({ ok: false, status: 403, reason: "placeholder_header_not_allowed", rule: "defaults" });
    }
  });

  test("a placeholder in a header off the list is refused 403 placeholder_header_not_allowed: the secret is never read, nor named by value", () => {
    for (const [lines, readBefore] of [
      [["X-Request-Id: tidegate-placeholder:key"], []],
      [["x-request-id: req-1 tidegate-placeholder:key"], []],
      [["X-Api-Key: tidegate-placeholder:key", "X-Request-Id: tidegate-placeholder:key"], ["key"]], // the listed one's, before
      [["X-Request-Id: 1", "X-Request-Id: tidegate-placeholder:tok"], []], // a repeated field: each one is judged
    ] as const) {
      const { v, read } = withHeaders("api.test", ...lines);
      expect(v).toMatchObject({ ok: false, status: 403, reason: "placeholder_header_not_allowed", rule: "api", name: "api.test" });
      expect(v.ok === false && v.detail).toMatch(/^header [Xx]-[Rr]equest-[Ii]d carries a placeholder for secret (key|tok), and rule api swaps placeholders only in authorization, x-api-key, api-key$/);
      expect(JSON.stringify(v)).not.toMatch(/K3Y|T0K/);
      expect(read).toEqual([...readBefore]);
    }
    // a placeholder for a secret the rule does not inject stays placeholder_not_allowed, on the list or off it
    expect(withHeaders("api.test", "X-Request-Id: tidegate-placeholder:other").v).toMatchObject({ ok: false, reason: "placeholder_not_allowed" });
    expect(withHeaders("api.test", "X-Api-Key: tidegate-placeholder:other").v).toMatchObject({ ok: false, reason: "placeholder_not_allowed" });
  });

  test("placeholder_headers replaces the default: only the headers it names, in any case", () => {
    const ok = withHeaders("listed.test", "x-custom-auth: tidegate-placeholder:key");
    expect(ok.v).toMatchObject({ ok: true, secrets: ["key"] });
    expect(ok.v.ok && ok.v.headers.find(([n]) => n === "x-custom-auth")).toEqual(["x-custom-auth", "K3Y"]);
    const off = withHeaders("listed.test", "X-Api-Key: tidegate-placeholder:key");
    expect(off.v).toMatchObject({ ok: false, status: 403, reason: "placeholder_header_not_allowed", rule: "listed" });
    expect(off.v.ok === false && off.v.detail).toBe("header X-Api-Key carries a placeholder for secret key, and rule listed swaps placeholders only in x-custom-auth");
    expect(off.read).toEqual([]);
  });

  test("placeholder_headers: [] swaps no placeholder, in any header", () => {
    for (const h of ["Authorization", "X-Api-Key", "X-Custom-Auth"]) {
      const { v, read } = withHeaders("none.test", `${h}: tidegate-placeholder:key`);
      expect(v).toMatchObject({ ok: false, status: 403, reason: "placeholder_header_not_allowed", rule: "none" });
      expect(v.ok === false && v.detail).toEndWith("and rule none swaps placeholders only in no header (placeholder_headers: [])");
      expect(read).toEqual([]);
    }
  });

  test("secrets are named in the order first used: a placeholder's before the rule's own, each once", async () => {
    const v = await decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\nApi-Key: tidegate-placeholder:key+tidegate-placeholder:key\r\n\r\n"), deps(cached));
    expect(v).toMatchObject({ ok: true, secrets: ["key", "tok"] });
    expect(v.ok && v.headers.find(([n]) => n === "Api-Key")).toEqual(["Api-Key", "K3Y+K3Y"]);
    // without a placeholder, the rule's order (Authorization's tok, then X-Key's key)
    const plain = decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached));
    expect(plain).toMatchObject({ ok: true, secrets: ["tok", "key"] });
  });

  test("the secret named missing is the first one used: a placeholder's before the rule's headers'", async () => {
    const v = decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\nX-Api-Key: tidegate-placeholder:key\r\n\r\n"), deps(cached, {}));
    expect(v).toMatchObject({ ok: false, status: 503, reason: "secret_missing" });
    expect(v instanceof Promise || v.ok ? "" : v.detail).toBe("rule api injects secret key, which the agent does not hold");
    const second = decideRequest(ctx(), head("GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"), deps(cached, { tok: "T0K" }));
    expect(second instanceof Promise || second.ok ? "" : second.detail).toBe("rule api injects secret key, which the agent does not hold");
  });

  test("Upgrade: refused unless the rule names the protocol; no Upgrade needs no upgrade:", async () => {
    const up = "GET / HTTP/1.1\r\nHost: HOST\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    expect(await decideRequest(ctx(), head(up.replace("HOST", "api.test")), deps(cached))).toMatchObject({ ok: false, status: 403, reason: "upgrade_refused" });
    expect((await decideRequest(ctx("192.0.2.11"), head(up.replace("HOST", "ws.test")), deps(cached))).ok).toBe(true);
    expect((await decideRequest(ctx("192.0.2.11"), head("GET / HTTP/1.1\r\nHost: ws.test\r\n\r\n"), deps(cached))).ok).toBe(true);
  });

  test("a Host that is the address dialled: decided by cidr rules alone, with no name upstream", async () => {
    for (const host of ["192.0.2.50", "192.0.2.50:80", "[::ffff:192.0.2.50]"]) {
      const v = decideRequest(ctx("192.0.2.50"), head(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`), deps(cached));
      expect(v).not.toBeInstanceOf(Promise); // an address is never looked up
      expect(v).toMatchObject({ ok: true, name: "192.0.2.50", path: "/x", secrets: ["tok"] });
      if (v instanceof Promise || !v.ok) return;
      expect(v.rule.name).toBe("by-address");
      expect(v.upstream).toMatchObject({ port: 80, serverName: null });
      expect(v.upstream.address.text).toBe("192.0.2.50");
    }
    // a host rule never matches an address, even one its name resolves to
    expect(await decideRequest(ctx("192.0.2.10"), head("GET / HTTP/1.1\r\nHost: 192.0.2.10\r\n\r\n"), deps(cached))).toMatchObject({ ok: false, status: 403, reason: "no_rule", name: "192.0.2.10" });
  });

  test("a Host that is another address than the one dialled: 421 host_address_mismatch, naming both", async () => {
    const v = await decideRequest(ctx("192.0.2.50"), head("GET / HTTP/1.1\r\nHost: 192.0.2.51\r\n\r\n"), deps(cached));
    expect(v).toMatchObject({ ok: false, status: 421, reason: "host_address_mismatch", rule: null, name: "192.0.2.51" });
    expect(v.ok === false && v.detail).toBe("Host 192.0.2.51 is an address, and not the one dialled (192.0.2.50)");
    expect(await decideRequest(ctx("192.0.2.50"), head("GET / HTTP/1.1\r\nHost: [2001:db8::1]\r\n\r\n"), deps(cached))).toMatchObject({ ok: false, status: 421, reason: "host_address_mismatch" });
  });

  test("over TLS, a Host that is an address is not the connection's name: 421 host_sni_mismatch", async () => {
    const tls = { ...ctx("192.0.2.50"), sni: "api.test" };
    expect(await decideRequest(tls, head("GET / HTTP/1.1\r\nHost: 192.0.2.50\r\n\r\n"), deps(cached))).toMatchObject({ ok: false, status: 421, reason: "host_sni_mismatch" });
  });
});
