/**
 * HTTP/1.1 parser microbenchmark (issue 8): --requests small requests pipelined on one
 * connection, pushed into a RequestParser in --read-byte pieces (what one socket read gives), the
 * events counted. Streams: GET heads alone (wrk-like: every head the same, so the parser's
 * repeat path serves all but the first), GET heads whose target and X-Request-Id change every
 * time (each head parsed, its unchanged lines reused), POSTs with a 16-byte Content-Length body,
 * POSTs with a chunked body of two chunks, and responses through a ResponseParser. Reported:
 * messages per second, median of --reps runs after one warm-up, and ns per message.
 *
 *   taskset -c 0 bun bench/http1.ts [--requests 100000] [--reps 5] [--read 16384]
 */
import { parseArgs } from "node:util";
import { RequestParser, ResponseParser } from "../src/http1/index.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    requests: { type: "string", default: "100000" },
    reps: { type: "string", default: "5" },
    read: { type: "string", default: "16384" },
  },
});
const n = Number(values.requests);
const reps = Number(values.reps);
const read = Number(values.read);
if (!(n >= 1) || !(reps >= 1) || !(read >= 1)) throw new Error("bench: --requests, --reps and --read must be positive");

function latin1(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
const headers = "Host: api.example.com\r\nUser-Agent: wrk/4.2.0\r\nAccept: */*\r\nX-Request-Id: 3f2a9c\r\n";
const varied = (i: number) => `GET /v1/items?page=${i} HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: wrk/4.2.0\r\nAccept: */*\r\nX-Request-Id: ${(i * 2654435761) % 4294967296}\r\n\r\n`;
const streams: [string, string | ((i: number) => string), "request" | "response"][] = [
  ["GET heads", `GET /v1/items?page=2 HTTP/1.1\r\n${headers}\r\n`, "request"],
  ["GET heads, each different", varied, "request"],
  ["POST, Content-Length 16", `POST /v1/items HTTP/1.1\r\n${headers}Content-Length: 16\r\n\r\n{"name":"item1"}`, "request"],
  ["POST, chunked 2 x 8", `POST /v1/items HTTP/1.1\r\n${headers}Transfer-Encoding: chunked\r\n\r\n8\r\n{"name":\r\n8\r\n"item1"}\r\n0\r\n\r\n`, "request"],
  ["responses, Content-Length 16", "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: keep-alive\r\n\r\n{\"name\":\"item1\"}", "response"],
];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

function run(stream: Uint8Array, kind: "request" | "response"): number {
  const parser = kind === "request" ? new RequestParser() : new ResponseParser();
  if (parser instanceof ResponseParser) for (let i = 0; i < n; i++) parser.expect("GET");
  let heads = 0;
  const t0 = performance.now();
  for (let off = 0; off < stream.length; off += read) {
    for (const e of parser.push(stream.subarray(off, off + read))) {
      if (e.kind === "head") heads++;
      else if (e.kind === "error") throw e.error;
    }
  }
  const ms = performance.now() - t0;
  if (heads !== n) throw new Error(`bench: ${heads} heads, want ${n}`);
  return ms;
}

console.log(`http1 parser: ${n} messages pipelined, pushed in ${read}-byte reads, median of ${reps}`);
for (const [name, one, kind] of streams) {
  const text = typeof one === "string" ? one.repeat(n) : Array.from({ length: n }, (_, i) => one(i)).join("");
  const stream = latin1(text);
  run(stream, kind);
  const ms = median(Array.from({ length: reps }, () => run(stream, kind)));
  const perSec = Math.round((n / ms) * 1000);
  console.log(`  ${name.padEnd(30)} ${perSec.toLocaleString("en-US").padStart(11)} ${kind}s/s  ${((ms * 1e6) / n).toFixed(0).padStart(5)} ns each  (${Math.round(stream.length / n)} bytes)`);
}
