/**
 * The other process in this folder's multi-process tests (run by test-support.ts runChild):
 *   open PATH                    try to open; print "ok" or the StoreError code
 *   consume PATH START_MS H1,H2  open in shared mode, wait until START_MS, consume each token hash,
 *                                print one JSON line: [node name or error code, ...]
 *   record PATH SERIAL           record an issued certificate, print "done", then SIGKILL itself
 */
import { StoreError } from "./errors.ts";
import { SqliteDatastore } from "./sqlite.ts";

const [action, path, ...rest] = process.argv.slice(2);
if (path === undefined) throw new Error("usage: test-child.ts ACTION PATH ...");

function codeOf(e: unknown): string {
  return e instanceof StoreError ? e.code : `unexpected: ${String(e)}`;
}

if (action === "open") {
  try {
    const store = await SqliteDatastore.open(path);
    await store.close();
    console.log("ok");
  } catch (e) {
    console.log(codeOf(e));
  }
} else if (action === "consume") {
  const store = await SqliteDatastore.open(path, { exclusive: false, busyTimeoutMs: 5000 });
  const startAt = Number(rest[0]);
  const hashes = (rest[1] ?? "").split(",");
  while (Date.now() < startAt) {
    // Spin, not sleep: both processes leave this loop within a millisecond of each other.
  }
  const results: string[] = [];
  for (const h of hashes) {
    try {
      results.push(await store.consumeJoinToken(h, new Date()));
    } catch (e) {
      results.push(codeOf(e));
    }
  }
  await store.close();
  console.log(JSON.stringify(results));
} else if (action === "record") {
  const store = await SqliteDatastore.open(path);
  const now = new Date();
  await store.recordIssued({
    serial: rest[0] ?? "01",
    spiffeId: "spiffe://example.org/crash",
    kind: "workload",
    nodeName: "node-1",
    entryId: null,
    notBefore: now,
    notAfter: new Date(now.getTime() + 3600_000),
    issuedAt: now,
  });
  process.stdout.write("done\n", () => process.kill(process.pid, "SIGKILL"));
} else {
  throw new Error(`unknown action ${String(action)}`);
}
