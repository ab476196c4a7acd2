import { assert, codeOf, describe, test } from "../../../test/shim.ts";
import { MAX_DEPTH, encodeAnyValue } from "./any-value.ts";
import { encodeLogRecord, encodeOtlpLogs, isoToUnixNano, severityOf } from "./encode.ts";
import { OtlpError } from "./errors.ts";
import { CONN_OPEN, DENY, event } from "./test-events.ts";

const RESOURCE = { instance: "node-a", hostName: "host-1" };

describe("encodeOtlpLogs", () => {
  test("maps a conn_open and a deny to the exact ExportLogsServiceRequest", () => {
    const req = encodeOtlpLogs([CONN_OPEN, DENY], RESOURCE);
    const s = (v: string) => ({ stringValue: v });
    const i = (v: string) => ({ intValue: v });
    assert.deepStrictEqual(req, {
      resourceLogs: [
        {
          resource: { attributes: [{ key: "service.name", value: s("tidegate") }, { key: "service.instance.id", value: s("node-a") }, { key: "host.name", value: s("host-1") }] },
          scopeLogs: [
            {
              scope: { name: "tidegate.audit" },
              logRecords: [
                {
                  timeUnixNano: "1795712400123000000",
                  observedTimeUnixNano: "1795712400123000000",
                  severityNumber: 9,
                  severityText: "INFO",
                  eventName: "conn_open",
                  body: s(CONN_OPEN.line),
                  attributes: [
                    { key: "tidegate.seq", value: i("7") },
                    { key: "tidegate.type", value: s("conn_open") },
                    { key: "instance", value: s("node-a") },
                    { key: "conn_id", value: s("c-1") },
                    { key: "side", value: s("egress") },
                    {
                      key: "src",
                      value: {
                        kvlistValue: {
                          values: [
                            { key: "spiffe_id", value: {} },
                            { key: "pid", value: i("4242") },
                            { key: "uid", value: i("1000") },
                            { key: "cgroup_id", value: {} },
                            { key: "workload", value: s("agent") },
                            { key: "exe", value: s("/usr/bin/curl") },
                            { key: "peer", value: s("10.0.0.2:40000") },
                          ],
                        },
                      },
                    },
                    { key: "dst", value: { kvlistValue: { values: [{ key: "addr", value: s("93.184.216.34") }, { key: "port", value: i("443") }, { key: "name", value: s("example.com") }] } } },
                    { key: "decision", value: s("allow") },
                    { key: "rule", value: s("web") },
                    { key: "action", value: {} },
                  ],
                },
                {
                  timeUnixNano: "1795712401000000000",
                  observedTimeUnixNano: "1795712401000000000",
                  severityNumber: 13,
                  severityText: "WARN",
                  eventName: "deny",
                  body: s(DENY.line),
                  attributes: [
                    { key: "tidegate.seq", value: i("8") },
                    { key: "tidegate.type", value: s("deny") },
                    { key: "side", value: s("egress") },
                    { key: "conn_id", value: {} },
                    { key: "src", value: { kvlistValue: { values: [] } } },
                    { key: "dst", value: { kvlistValue: { values: [{ key: "addr", value: s("10.1.1.1") }, { key: "port", value: i("22") }, { key: "name", value: {} }] } } },
                    { key: "rule", value: {} },
                    { key: "reason", value: s("no_rule") },
                    { key: "ratio", value: { doubleValue: 0.5 } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    });
  });

  test("every JSON key is a lowerCamelCase field name, and the same events give the same bytes", () => {
    const req = encodeOtlpLogs([CONN_OPEN, DENY], RESOURCE);
    const keys = new Set<string>();
    const walk = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) keys.add(k), walk(x);
    };
    walk(req);
    assert.deepStrictEqual([...keys].sort(), [
      "attributes", "body", "doubleValue", "eventName", "intValue", "key", "kvlistValue", "logRecords", "name",
      "observedTimeUnixNano", "resource", "resourceLogs", "scope", "scopeLogs", "severityNumber", "severityText",
      "stringValue", "timeUnixNano", "value", "values",
    ]);
    assert.equal(JSON.stringify(encodeOtlpLogs([CONN_OPEN, DENY], RESOURCE)), JSON.stringify(req));
  });

  test("host.name is left out when not given or empty", () => {
    for (const r of [{ instance: "i" }, { instance: "i", hostName: "" }]) {
      const attrs = encodeOtlpLogs([], r).resourceLogs[0]!.resource.attributes;
      assert.deepStrictEqual(attrs.map((a) => a.key), ["service.name", "service.instance.id"]);
    }
  });

  test("an empty instance is refused", () => {
    assert.equal(codeOf(() => encodeOtlpLogs([], { instance: "" }), OtlpError), "otlp_bad_event");
  });
});

describe("severityOf", () => {
  test("WARN (13) for deny, policy_rejected and audit_gap; INFO (9) for every other type", () => {
    for (const t of ["deny", "policy_rejected", "audit_gap"]) assert.deepStrictEqual(severityOf(t), { number: 13, text: "WARN" });
    for (const t of ["agent_start", "conn_open", "conn_close", "http_request", "tool_call", "checkpoint", "audit_recovered", "admin", "svid_issued"]) {
      assert.deepStrictEqual(severityOf(t), { number: 9, text: "INFO" });
    }
  });
});

describe("encodeAnyValue", () => {
  const cases: [string, unknown, unknown][] = [
    ["a string", "x", { stringValue: "x" }],
    ["an empty string", "", { stringValue: "" }],
    ["true", true, { boolValue: true }],
    ["false", false, { boolValue: false }],
    ["zero", 0, { intValue: "0" }],
    ["a negative integer", -5, { intValue: "-5" }],
    ["the largest safe integer", Number.MAX_SAFE_INTEGER, { intValue: "9007199254740991" }],
    ["2^53 (not safe: a double)", 2 ** 53, { doubleValue: 2 ** 53 }],
    ["a fraction", 1.5, { doubleValue: 1.5 }],
    ["a negative fraction", -0.25, { doubleValue: -0.25 }],
    ["1e21", 1e21, { doubleValue: 1e21 }],
    ["null (the empty AnyValue)", null, {}],
    ["an empty array", [], { arrayValue: { values: [] } }],
    ["a mixed array", [1, "a", null], { arrayValue: { values: [{ intValue: "1" }, { stringValue: "a" }, {}] } }],
    ["an empty object", {}, { kvlistValue: { values: [] } }],
    ["a nested object", { a: { b: [true] } }, { kvlistValue: { values: [{ key: "a", value: { kvlistValue: { values: [{ key: "b", value: { arrayValue: { values: [{ boolValue: true }] } } }] } } }] } }],
  ];
  for (const [name, input, want] of cases) {
    test(`encodes ${name}`, () => assert.deepStrictEqual(encodeAnyValue(input, "f"), want));
  }

  let deep: unknown = 1;
  for (let i = 0; i <= MAX_DEPTH; i++) deep = [deep];
  const refused: [string, unknown][] = [
    ["undefined", undefined],
    ["NaN", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY],
    ["a bigint", 10n],
    ["a function", () => 1],
    ["a Date", new Date(0)],
    ["a Map", new Map()],
    [`nesting deeper than ${MAX_DEPTH}`, deep],
  ];
  for (const [name, input] of refused) {
    test(`refuses ${name} with otlp_bad_event`, () => assert.equal(codeOf(() => encodeAnyValue(input, "f"), OtlpError), "otlp_bad_event"));
  }
});

describe("isoToUnixNano", () => {
  const good: [string, string][] = [
    ["1970-01-01T00:00:00Z", "0"],
    ["1970-01-01T00:00:00.000000001Z", "1"],
    ["2026-11-26T17:00:00.123Z", "1795712400123000000"],
    ["2026-11-26T17:00:00.1Z", "1795712400100000000"],
    ["2000-02-29T23:59:59.999999999Z", "951868799999999999"],
    ["2554-07-21T23:34:33.709551615Z", "18446744073709551615"],
  ];
  for (const [iso, nanos] of good) test(`reads ${iso}`, () => assert.equal(isoToUnixNano(iso), BigInt(nanos)));

  const bad = [
    "", "2026-11-26 17:00:00Z", "2026-11-26T17:00:00+00:00", "2026-11-26T17:00:00", "2026-02-30T00:00:00Z",
    "2026-11-26T24:00:00Z", "2026-12-31T23:59:60Z", "1969-12-31T23:59:59.999Z", "2026-11-26T17:00:00.1234567890Z",
    "0099-01-01T00:00:00Z", "2554-07-21T23:34:33.709551616Z", "2026-11-26T17:00:00.Z", "+02026-11-26T17:00:00Z",
  ];
  for (const iso of bad) test(`refuses ${JSON.stringify(iso)}`, () => assert.equal(isoToUnixNano(iso), null));
});

describe("encodeLogRecord refuses a bad event with otlp_bad_event", () => {
  const base = event(1, "conn_close", { conn_id: "c" });
  const bad: [string, object][] = [
    ["seq 0", { seq: 0 }],
    ["a negative seq", { seq: -1 }],
    ["a fractional seq", { seq: 1.5 }],
    ["a seq that is a string", { seq: "1" }],
    ["an unsafe seq", { seq: 2 ** 53 }],
    ["an empty type", { type: "" }],
    ["a time with an offset", { time: "2026-11-26T17:00:00+01:00" }],
    ["a time that is a number", { time: 0 }],
    ["a line that is not a string", { line: null }],
    ["fields that are null", { fields: null }],
    ["fields that are an array", { fields: [] }],
    ["a field named tidegate.seq", { fields: { "tidegate.seq": 1 } }],
    ["a field named tidegate.type", { fields: { "tidegate.type": "x" } }],
    ["a field that is undefined", { fields: { a: undefined } }],
  ];
  for (const [name, patch] of bad) {
    test(name, () => {
      const e = { ...base, ...patch } as typeof base;
      assert.equal(codeOf(() => encodeLogRecord(e), OtlpError), "otlp_bad_event");
    });
  }

  test("the message names the event's seq and the field's path", () => {
    try {
      encodeLogRecord(event(12, "admin", { detail: { deep: Number.NaN } }));
      assert.fail("no error");
    } catch (e) {
      assert.ok(e instanceof OtlpError);
      assert.match(e.message, /^audit: otlp: event seq 12 field detail\.deep is NaN, not JSON data$/);
    }
  });
});
