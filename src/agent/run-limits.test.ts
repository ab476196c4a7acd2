// The run.sock connection limits (run-limits.ts): every branch of the combining rule, at and
// around each bound, and the message naming the limit. With real sockets and real callers of two
// uids: run-service.test.ts ("one user at its cap ...").
import { describe, expect, test } from "bun:test";
import { admitConnection, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_USER, ROOT_RESERVE, type OpenConnections, type RunBusyCode } from "./run-limits.ts";

const NOBODY = 65534;
const POOL = MAX_CONNECTIONS - ROOT_RESERVE;

describe("admitConnection", () => {
  const cases: [string, number, OpenConnections, RunBusyCode | null][] = [
    ["nothing open", NOBODY, { total: 0, ofUid: 0, notRoot: 0 }, null],
    ["a user one below its share", NOBODY, { total: 15, ofUid: MAX_CONNECTIONS_PER_USER - 1, notRoot: 15 }, null],
    ["a user at its share", NOBODY, { total: 16, ofUid: MAX_CONNECTIONS_PER_USER, notRoot: 16 }, "run_busy_user"],
    ["another user while the first is at its share", 1000, { total: 16, ofUid: 0, notRoot: 16 }, null],
    ["root beyond a user's share", 0, { total: 40, ofUid: 40, notRoot: 0 }, null],
    ["a user, with the others one below the pool", NOBODY, { total: POOL - 1, ofUid: 0, notRoot: POOL - 1 }, null],
    ["a user, with the others at the pool (the root reserve left)", NOBODY, { total: POOL, ofUid: 0, notRoot: POOL }, "run_busy"],
    ["root, with the others at the pool: its reserve", 0, { total: POOL, ofUid: 0, notRoot: POOL }, null],
    ["root, one below the total", 0, { total: MAX_CONNECTIONS - 1, ofUid: ROOT_RESERVE - 1, notRoot: POOL }, null],
    ["root, at the total", 0, { total: MAX_CONNECTIONS, ofUid: MAX_CONNECTIONS, notRoot: 0 }, "run_busy"],
    ["a user, at the total (root holding most)", NOBODY, { total: MAX_CONNECTIONS, ofUid: 0, notRoot: 0 }, "run_busy"],
    ["a user at its share and the pool full: its own share named", NOBODY, { total: POOL, ofUid: MAX_CONNECTIONS_PER_USER, notRoot: POOL }, "run_busy_user"],
  ];
  for (const [name, uid, open, code] of cases) {
    test(`${name}: ${code ?? "served"}`, () => {
      expect(admitConnection(uid, open)?.code ?? null).toBe(code);
    });
  }

  test("the refusals name the uid and the limit", () => {
    expect(admitConnection(NOBODY, { total: 16, ofUid: 16, notRoot: 16 })?.message).toBe(`run: uid ${NOBODY} has 16 run connections open (at most ${MAX_CONNECTIONS_PER_USER} per user); end one and try again`);
    expect(admitConnection(NOBODY, { total: POOL, ofUid: 0, notRoot: POOL })?.message).toBe(`run: callers other than root have ${POOL} run connections open (at most ${POOL}, ${ROOT_RESERVE} kept for root); try again`);
    expect(admitConnection(0, { total: MAX_CONNECTIONS, ofUid: 0, notRoot: 0 })?.message).toBe(`run: the agent has ${MAX_CONNECTIONS} run connections open (its limit); try again`);
  });
});
