/**
 * The workloads' programs in the interception end-to-end test (intercept.test.ts), run with
 * `tidegate run` as nobody. None is given a CA file: they trust what the variables `tidegate run`
 * sets name. Each dials the API's address itself: the name is resolved here, not by a DNS server
 * (the workloads have none they may reach), so SNI and Host stay the name.
 */

/** Python's urllib: each URL with an X-Test-Id (and an own Authorization when given); the name resolves to the API's address. */
export const PY_URLLIB = String.raw`
import json, os, socket, sys, urllib.request, urllib.error
real = socket.getaddrinfo
def getaddrinfo(host, *a, **k):
    return real(sys.argv[1] if host.endswith(".partner.test") else host, *a, **k)
socket.getaddrinfo = getaddrinfo
out = []
for spec in json.loads(sys.argv[2]):
    req = urllib.request.Request(spec["url"], headers=spec["headers"])
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            out.append({"status": r.status, "body": r.read().decode()})
    except urllib.error.HTTPError as e:
        out.append({"status": e.code, "body": e.read().decode()})
    except Exception as e:
        out.append({"status": 0, "body": repr(e)})
print(json.dumps({"results": out, "environ": open("/proc/self/environ", "rb").read().decode("latin1")}))
`;

/** Node's fetch: the same, the name resolved through a patched dns.lookup. */
export const NODE_FETCH = String.raw`
const dns = require("dns");
const fs = require("fs");
const real = dns.lookup;
dns.lookup = (host, opts, cb) => {
  if (typeof opts === "function") { cb = opts; opts = {}; }
  if (!host.endsWith(".partner.test")) return real(host, opts, cb);
  return opts && opts.all ? cb(null, [{ address: process.argv[1], family: 4 }]) : cb(null, process.argv[1], 4);
};
(async () => {
  const results = [];
  for (const spec of JSON.parse(process.argv[2])) {
    try {
      const r = await fetch(spec.url, { headers: spec.headers });
      results.push({ status: r.status, body: await r.text() });
    } catch (e) {
      results.push({ status: 0, body: String(e && e.cause ? e.cause : e) });
    }
  }
  console.log(JSON.stringify({ results, environ: fs.readFileSync("/proc/self/environ", "latin1") }));
})();
`;

/**
 * Raw HTTP/1.1 from a workload: argv host, port, a JSON list of conversations (each a list of
 * writes on one connection), and optionally how many responses to expect per write (default 1).
 * After each write it reads that many responses (head and Content-Length body); a connection the
 * peer closed gives null. Prints per conversation the responses and whether the peer closed.
 */
export const PY_RAW = String.raw`
import json, socket, sys
host, port, convs = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
per = int(sys.argv[4]) if len(sys.argv) > 4 else 1
def response(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    n = 0
    for l in lines[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == "content-length":
            n = int(v.strip())
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            break
        rest += d
    return {"status": lines[0], "body": rest[:n].decode("latin1")}, rest[n:]
out = []
for writes in convs:
    s = socket.create_connection((host, port), timeout=10)
    buf, got = b"", []
    for w in writes:
        try:
            s.sendall(w.encode("latin1"))
        except OSError:
            got.append(None)
            break
        for _ in range(per):
            r, buf = response(s, buf)
            got.append(r)
    s.settimeout(2)
    try:
        closed = buf == b"" and s.recv(1) == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    s.close()
    out.append({"responses": got, "closed": closed})
print(json.dumps(out))
`;
