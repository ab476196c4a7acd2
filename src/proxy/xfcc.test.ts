import { describe, expect, test } from "bun:test";
import { XfccRewriter } from "./xfcc.ts";

const BY = "spiffe://example.org/backend";
const URI = "spiffe://example.org/client";
const text = (r: { out: Uint8Array[] }) => r.out.map((b) => new TextDecoder().decode(b)).join("");

describe("x-forwarded-client-cert on every request", () => {
  test("added to each pipelined request; a forged one (any case, several) is removed", () => {
    const w = new XfccRewriter(BY, URI);
    const r = w.push(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: b\r\nX-Forwarded-Client-Cert: By=x;URI=spiffe://example.org/admin\r\nx-forwarded-client-cert: URI=spiffe://evil\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n"));
    expect(r.refused).toBeNull();
    const out = text(r);
    expect(out.match(/x-forwarded-client-cert/gi)?.length).toBe(2);
    expect(out).not.toContain("admin");
    expect(out).not.toContain("evil");
    expect(out).toContain(`GET /a HTTP/1.1\r\nHost: b\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\n`);
    expect(w.requests).toBe(2);
  });

  test("a kept-alive connection's repeated request is rewritten as the first was, a forged header still removed; another head anew", () => {
    const w = new XfccRewriter(BY, URI);
    const req = new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: b\r\nX-Forwarded-Client-Cert: URI=spiffe://evil\r\n\r\n");
    const want = `GET /a HTTP/1.1\r\nHost: b\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\n`;
    for (let i = 0; i < 3; i++) expect(text(w.push(req))).toBe(want);
    expect(text(w.push(new TextEncoder().encode("GET /z HTTP/1.1\r\nHost: b\r\n\r\n")))).toBe(`GET /z HTTP/1.1\r\nHost: b\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\n`);
    expect(text(w.push(req))).toBe(want);
    expect(w.requests).toBe(5);
  });

  test("bodies keep their framing, whole or split byte by byte", () => {
    const input = "POST /c HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nPOST /d HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc";
    const xfcc = `x-forwarded-client-cert: By=${BY};URI=${URI}\r\n`;
    expect(text(new XfccRewriter(BY, URI).push(new TextEncoder().encode(input)))).toBe(
      `POST /c HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n${xfcc}\r\n5\r\nhello\r\n0\r\n\r\nPOST /d HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n${xfcc}\r\nabc`,
    );
    const w = new XfccRewriter(BY, URI);
    let out = "";
    for (const ch of input) out += text(w.push(new TextEncoder().encode(ch)));
    // Re-chunked as it came (one byte a chunk), the same body.
    expect(out).toContain(`chunked\r\n${xfcc}\r\n1\r\nh\r\n1\r\ne\r\n1\r\nl\r\n1\r\nl\r\n1\r\no\r\n0\r\n\r\nPOST /d`);
    expect(out.endsWith(`Content-Length: 3\r\n${xfcc}\r\nabc`)).toBe(true);
  });

  test("a forged one in a chunked body's trailer section is removed too; other trailers pass", () => {
    const w = new XfccRewriter(BY, URI);
    const r = w.push(new TextEncoder().encode("POST /t HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Forwarded-Client-Cert: By=x;URI=spiffe://example.org/admin\r\nx-checksum: 1\r\nx-forwarded-client-cert: URI=spiffe://evil\r\n\r\n"));
    expect(r.refused).toBeNull();
    expect(text(r)).toBe(`POST /t HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\n3\r\nabc\r\n0\r\nx-checksum: 1\r\n\r\n`);
  });

  test("a Connection header cannot name x-forwarded-client-cert as hop-by-hop (an intermediary behind would drop the listener's); its other options stay", () => {
    const w = new XfccRewriter(BY, URI);
    const r = w.push(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: b\r\nConnection: X-Forwarded-Client-Cert\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\nConnection: keep-alive, x-forwarded-client-cert ,x-other\r\n\r\n"));
    expect(r.refused).toBeNull();
    const xfcc = `x-forwarded-client-cert: By=${BY};URI=${URI}\r\n`;
    expect(text(r)).toBe(`GET /a HTTP/1.1\r\nHost: b\r\n${xfcc}\r\nGET /b HTTP/1.1\r\nHost: b\r\nConnection: keep-alive, x-other\r\n${xfcc}\r\n`);
  });

  test("a forged one spelt with underscores is removed too: CGI and WSGI servers (wsgiref, older gunicorn) read it as the same variable, before the listener's", () => {
    const w = new XfccRewriter(BY, URI);
    const r = w.push(new TextEncoder().encode("POST /u HTTP/1.1\r\nHost: b\r\nX_Forwarded_Client_Cert: By=x;URI=spiffe://example.org/admin\r\nx-forwarded_client-cert: URI=spiffe://evil\r\nx_other: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx_forwarded_client_cert: URI=spiffe://evil2\r\n\r\n"));
    expect(r.refused).toBeNull();
    expect(text(r)).toBe(`POST /u HTTP/1.1\r\nHost: b\r\nx_other: 1\r\nTransfer-Encoding: chunked\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\n0\r\n\r\n`);
  });

  test("a request the rule no longer admits (a reload) ends the connection with admit's reason; those before it pass", () => {
    let heads = 0;
    const w = new XfccRewriter(BY, URI, () => (++heads > 1 ? { reason: "client_not_allowed", detail: "dropped" } : null));
    const r = w.push(new TextEncoder().encode("GET /a HTTP/1.1\r\nHost: b\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n"));
    expect(r.refused).toEqual({ reason: "client_not_allowed", detail: "dropped" });
    expect(text(r)).toBe(`GET /a HTTP/1.1\r\nHost: b\r\nx-forwarded-client-cert: By=${BY};URI=${URI}\r\n\r\n`);
    expect(w.requests).toBe(1);
  });

  test("a smuggling shape, an upgrade or CONNECT ends the connection with a reason", () => {
    for (const [input, reason] of [
      ["GET / HTTP/1.1\r\nHost: b\r\nHost: c\r\n\r\n", "http1_duplicate_host"],
      ["POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "http1_conflicting_framing"],
      ["GET / HTTP/1.1\r\nHost: b\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", "upgrade_refused"],
      ["CONNECT b:443 HTTP/1.1\r\nHost: b:443\r\n\r\n", "upgrade_refused"],
    ] as const) {
      const r = new XfccRewriter(BY, URI).push(new TextEncoder().encode(input));
      expect(r.refused?.reason).toBe(reason);
      expect(text(r)).toBe("");
    }
  });
});
