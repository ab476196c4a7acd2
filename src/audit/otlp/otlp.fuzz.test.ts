/**
 * Property tests of the mapping (../shared/STYLE.md point 6): any list of events with any JSON
 * fields survives encode, JSON text and decode unchanged; the decoder, given any JSON or a valid
 * request with one part replaced by any JSON, returns or throws OtlpError, nothing else.
 */
import fc from "fast-check";
import { fuzzRuns } from "../../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../../test/shim.ts";
import { decodeOtlpLogs } from "./decode.ts";
import { encodeOtlpLogs, isoToUnixNano, type ParsedEvent } from "./encode.ts";
import { OtlpError } from "./errors.ts";
import { event } from "./test-events.ts";

const RUNS = fuzzRuns(200);
const RESERVED = ["seq", "time", "type", "prev", "tidegate.seq", "tidegate.type"];

const json = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.parse(JSON.stringify(v)) as unknown);
const fields = fc.dictionary(fc.string({ maxLength: 12 }).filter((k) => !RESERVED.includes(k)), json, { maxKeys: 5 });
const type = fc.constantFrom("conn_open", "conn_close", "deny", "http_request", "tool_call", "audit_gap", "checkpoint", "x");
const time = fc
  .tuple(fc.date({ min: new Date(0), max: new Date("2500-01-01T00:00:00Z"), noInvalidDate: true }), fc.constantFrom("", "4", "456", "456789"))
  .map(([d, extra]) => (extra === "" ? d.toISOString() : d.toISOString().replace("Z", `${extra}Z`)));

const events = (maxLength: number): fc.Arbitrary<ParsedEvent[]> =>
  fc
    .tuple(fc.integer({ min: 1, max: 2 ** 40 }), fc.array(fc.tuple(type, fields, time), { maxLength }))
    .map(([first, list]) => list.map(([t, f, at], i) => event(first + i, t, f as Record<string, unknown>, at)));

function onlyOtlpErrors(input: unknown): void {
  try {
    decodeOtlpLogs(input);
  } catch (e) {
    if (!(e instanceof OtlpError)) throw e;
  }
}

/** Every path to a value inside `v` (the root excluded). */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (typeof v !== "object" || v === null) return [];
  return Object.entries(v).flatMap(([k, x]) => {
    const p = [...at, Array.isArray(v) ? Number(k) : k];
    return [p, ...paths(x, p)];
  });
}

describe("OTLP mapping properties", () => {
  test("encode, JSON text, decode gives back every event: seq, type, line, time and fields", () => {
    fc.assert(
      fc.property(events(6), fc.string({ minLength: 1, maxLength: 8 }), (list, instance) => {
        const out = decodeOtlpLogs(JSON.stringify(encodeOtlpLogs(list, { instance })));
        assert.equal(out.length, list.length);
        out.forEach((r, i) => {
          const e = list[i]!;
          assert.deepStrictEqual([r.seq, r.type, r.line, r.timeUnixNano], [e.seq, e.type, e.line, isoToUnixNano(e.time)]);
          assert.deepStrictEqual(r.attributes, { "tidegate.seq": e.seq, "tidegate.type": e.type, ...e.fields });
        });
      }),
      { numRuns: RUNS },
    );
  });

  test("a millisecond time gives the Date's milliseconds times 10^6", () => {
    fc.assert(
      fc.property(fc.date({ min: new Date(0), max: new Date("2554-07-21T23:34:33.709Z"), noInvalidDate: true }), (d) => {
        assert.equal(isoToUnixNano(d.toISOString()), BigInt(d.getTime()) * 1_000_000n);
      }),
      { numRuns: RUNS },
    );
  });

  test("any JSON, as a value or as text, is decoded or refused with OtlpError", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        onlyOtlpErrors(v);
        onlyOtlpErrors(JSON.stringify(v));
      }),
      { numRuns: RUNS },
    );
  });

  test("a valid request with one part replaced by any JSON is decoded or refused with OtlpError", () => {
    fc.assert(
      fc.property(events(2).filter((l) => l.length > 0), fc.nat(), fc.jsonValue({ maxDepth: 2 }), (list, pick, replacement) => {
        const req = JSON.parse(JSON.stringify(encodeOtlpLogs(list, { instance: "i" })));
        const all = paths(req);
        const path = all[pick % all.length]!;
        let parent = req;
        for (const k of path.slice(0, -1)) parent = parent[k];
        parent[path[path.length - 1]!] = replacement;
        onlyOtlpErrors(req);
      }),
      { numRuns: RUNS },
    );
  });
});
