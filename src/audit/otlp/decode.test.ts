import { assert, codeOf, describe, test } from "../../../test/shim.ts";
import { decodeOtlpLogs } from "./decode.ts";
import { encodeOtlpLogs } from "./encode.ts";
import { OtlpError } from "./errors.ts";
import { CONN_OPEN, DENY, event } from "./test-events.ts";

const RESOURCE = { instance: "node-a" };

/** A fresh, mutable copy of the request for CONN_OPEN and DENY. */
function request(): any {
  return JSON.parse(JSON.stringify(encodeOtlpLogs([CONN_OPEN, DENY], RESOURCE)));
}

const rec = (r: any, i = 0): any => r.resourceLogs[0].scopeLogs[0].logRecords[i];
const attr = (r: any, key: string, i = 0): any => rec(r, i).attributes.find((a: any) => a.key === key);

describe("decodeOtlpLogs", () => {
  test("gives back seq, type, line, time, severity and every attribute of what the encoder wrote", () => {
    const out = decodeOtlpLogs(JSON.stringify(request()));
    assert.deepStrictEqual(out.map((r) => [r.seq, r.type, r.line, r.severityNumber]), [
      [7, "conn_open", CONN_OPEN.line, 9],
      [8, "deny", DENY.line, 13],
    ]);
    assert.equal(out[0]!.timeUnixNano, 1795712400123000000n);
    assert.deepStrictEqual(out[0]!.attributes, { "tidegate.seq": 7, "tidegate.type": "conn_open", ...CONN_OPEN.fields });
    assert.deepStrictEqual(out[1]!.attributes, { "tidegate.seq": 8, "tidegate.type": "deny", ...DENY.fields });
  });

  test("takes a parsed object as well as text", () => {
    assert.equal(decodeOtlpLogs(request()).length, 2);
  });

  test("accepts the rest of the mapping the encoder does not write", () => {
    const r = request();
    delete r.resourceLogs[0].resource;
    delete r.resourceLogs[0].scopeLogs[0].scope;
    r.resourceLogs[0].schemaUrl = "https://opentelemetry.io/schemas/1.26.0";
    Object.assign(rec(r), { flags: 1, droppedAttributesCount: 0, traceId: "5B8EFFF798038103D269B633813FC60C", spanId: "eee19b7ec3c1b174" });
    rec(r).attributes.push({ key: "blob", value: { bytesValue: "AAEC/w==" } }, { key: "big", value: { intValue: "-9223372036854775808" } }, { key: "nothing" });
    rec(r, 1).traceId = "";
    const out = decodeOtlpLogs(r);
    assert.deepStrictEqual(out[0]!.attributes.blob, new Uint8Array([0, 1, 2, 255]));
    assert.equal(out[0]!.attributes.big, -(2n ** 63n));
    assert.equal(out[0]!.attributes.nothing, null);
  });

  test("an empty request, or a resource without records, gives no record", () => {
    assert.deepStrictEqual(decodeOtlpLogs("{}"), []);
    assert.deepStrictEqual(decodeOtlpLogs({ resourceLogs: [] }), []);
    assert.deepStrictEqual(decodeOtlpLogs(encodeOtlpLogs([], RESOURCE)), []);
  });

  const L = "resourceLogs[0].scopeLogs[0].logRecords[0]";
  const refused: [string, (r: any) => unknown, string][] = [
    ["text that is not JSON", () => "{", "the body is not JSON"],
    ["an array", () => [], "$: an array, want an object"],
    ["null", () => null, "$: null, want an object"],
    ["snake_case resource_logs", (r) => ({ resource_logs: r.resourceLogs }), '$: unknown field "resource_logs"'],
    ["snake_case time_unix_nano", (r) => { rec(r).time_unix_nano = rec(r).timeUnixNano; }, `${L}: unknown field "time_unix_nano"`],
    ["an unknown record field", (r) => { rec(r).severity = "INFO"; }, `${L}: unknown field "severity"`],
    ["resourceLogs that is an object", (r) => ({ resourceLogs: r.resourceLogs[0] }), "resourceLogs: an object, want an array"],
    ["timeUnixNano as a number", (r) => { rec(r).timeUnixNano = 1795712400123000000; }, `${L}.timeUnixNano: a number, want a fixed64 as a decimal string`],
    ["timeUnixNano with a leading zero", (r) => { rec(r).timeUnixNano = "01795712400123000000"; }, `${L}.timeUnixNano: a string, want a fixed64`],
    ["timeUnixNano negative", (r) => { rec(r).timeUnixNano = "-1"; }, `${L}.timeUnixNano: a string, want a fixed64`],
    ["timeUnixNano in exponent form", (r) => { rec(r).timeUnixNano = "1.7e18"; }, `${L}.timeUnixNano: a string, want a fixed64`],
    ["timeUnixNano past 2^64-1", (r) => { rec(r).timeUnixNano = "18446744073709551616"; }, `${L}.timeUnixNano: out of the fixed64 range`],
    ["timeUnixNano not the line's time", (r) => { rec(r).timeUnixNano = "1795712400123000001"; }, `${L}.timeUnixNano: not the audit line's time`],
    ["observedTimeUnixNano as a number", (r) => { rec(r).observedTimeUnixNano = 0; }, `${L}.observedTimeUnixNano: a number`],
    ["severityNumber as an enum name", (r) => { rec(r).severityNumber = "SEVERITY_NUMBER_INFO"; }, `${L}.severityNumber: a string, want an integer number`],
    ["severityNumber 0 (UNSPECIFIED)", (r) => { rec(r).severityNumber = 0; }, `${L}.severityNumber: 0 is not a SeverityNumber`],
    ["severityNumber 25", (r) => { rec(r).severityNumber = 25; }, `${L}.severityNumber: 25 is not a SeverityNumber`],
    ["severity WARN for a conn_open", (r) => { rec(r).severityNumber = 13; }, `${L}.severityNumber: want 9 INFO for "conn_open"`],
    ["severityText other than the number's", (r) => { rec(r).severityText = "WARN"; }, `${L}.severityNumber: want 9 INFO`],
    ["flags as a string", (r) => { rec(r).flags = "1"; }, `${L}.flags: a string, want an integer number`],
    ["droppedAttributesCount negative", (r) => { rec(r).droppedAttributesCount = -1; }, `${L}.droppedAttributesCount: a number, want an integer number`],
    ["a traceId in base64", (r) => { rec(r).traceId = "W47/95gDgQPSabYzgT/GDA=="; }, `${L}.traceId: want 32 hex digits`],
    ["tidegate.seq as a number", (r) => { attr(r, "tidegate.seq").value = { intValue: 7 }; }, `${L}.attributes[0].value.intValue: a number, want an int64 as a decimal string`],
    ["tidegate.seq as a stringValue", (r) => { attr(r, "tidegate.seq").value = { stringValue: "7" }; }, `${L}.attributes: no tidegate.seq intValue`],
    ["tidegate.seq as a doubleValue", (r) => { attr(r, "tidegate.seq").value = { doubleValue: 7 }; }, `${L}.attributes: no tidegate.seq intValue`],
    ["tidegate.seq 0", (r) => { attr(r, "tidegate.seq").value = { intValue: "0" }; }, `${L}.attributes: no tidegate.seq intValue`],
    ["an intValue past int64", (r) => { attr(r, "tidegate.seq").value = { intValue: "9223372036854775808" }; }, `${L}.attributes[0].value.intValue: out of the int64 range`],
    ["no tidegate.seq", (r) => { rec(r).attributes.shift(); }, `${L}.attributes: no tidegate.seq`],
    ["no tidegate.type", (r) => { rec(r).attributes.splice(1, 1); }, `${L}.attributes: no tidegate.type stringValue`],
    ["a repeated attribute key", (r) => { rec(r).attributes.push({ key: "conn_id", value: { stringValue: "again" } }); }, `${L}.attributes[10]: key "conn_id" repeated`],
    ["an AnyValue with two values", (r) => { attr(r, "conn_id").value = { stringValue: "a", boolValue: true }; }, `${L}.attributes[3].value: sets stringValue and boolValue`],
    ["an unknown AnyValue kind", (r) => { attr(r, "conn_id").value = { mapValue: {} }; }, `${L}.attributes[3].value: unknown field "mapValue"`],
    ["a snake_case AnyValue kind", (r) => { attr(r, "conn_id").value = { string_value: "c-1" }; }, `${L}.attributes[3].value: unknown field "string_value"`],
    ["a stringValue that is a number", (r) => { attr(r, "conn_id").value = { stringValue: 1 }; }, `${L}.attributes[3].value.stringValue: want a string`],
    ["a doubleValue that is a string", (r) => { attr(r, "conn_id").value = { doubleValue: "NaN" }; }, `${L}.attributes[3].value.doubleValue: want a finite number`],
    ["a boolValue that is a number", (r) => { attr(r, "conn_id").value = { boolValue: 1 }; }, `${L}.attributes[3].value.boolValue: want a boolean`],
    ["bytesValue not base64", (r) => { attr(r, "conn_id").value = { bytesValue: "@@" }; }, `${L}.attributes[3].value.bytesValue: a string, want base64`],
    ["bytesValue without padding", (r) => { attr(r, "conn_id").value = { bytesValue: "AAE" }; }, `${L}.attributes[3].value.bytesValue: a string, want base64`],
    ["an arrayValue that is an array", (r) => { attr(r, "conn_id").value = { arrayValue: [] }; }, `${L}.attributes[3].value.arrayValue: an array, want an object`],
    ["a kvlistValue entry with an unknown field", (r) => { attr(r, "src").value.kvlistValue.values[0].val = 1; }, `${L}.attributes[5].value.kvlistValue.values[0]: unknown field "val"`],
    ["a key that is a number", (r) => { rec(r).attributes[3].key = 3; }, `${L}.attributes[3].key: a number, want a string`],
    ["an eventName other than the type", (r) => { rec(r).eventName = "conn_close"; }, `${L}.eventName: not the tidegate.type attribute`],
    ["no body", (r) => { delete rec(r).body; }, `${L}.body: want the audit line as a stringValue`],
    ["a body that is a kvlistValue", (r) => { rec(r).body = { kvlistValue: { values: [] } }; }, `${L}.body: want the audit line as a stringValue`],
    ["a body that is not JSON", (r) => { rec(r).body = { stringValue: "seq 7" }; }, `${L}.body: the audit line is not JSON`],
    ["a body that is a JSON array", (r) => { rec(r).body = { stringValue: "[7]" }; }, `${L}.body: the audit line is not a JSON object`],
    ["a body of another seq", (r) => { rec(r).body = { stringValue: CONN_OPEN.line.replace('"seq":7', '"seq":70') }; }, `${L}.body: the audit line's seq or type is not the record's`],
    ["a body of another type", (r) => { rec(r).body = { stringValue: CONN_OPEN.line.replace('"conn_open"', '"conn_close"') }; }, `${L}.body: the audit line's seq or type`],
    ["a resource with an unknown field", (r) => { r.resourceLogs[0].resource.labels = {}; }, 'resourceLogs[0].resource: unknown field "labels"'],
    ["a resource with a repeated key", (r) => { r.resourceLogs[0].resource.attributes.push({ key: "service.name", value: { stringValue: "x" } }); }, 'resourceLogs[0].resource.attributes[2]: key "service.name" repeated'],
    ["a scope name that is a number", (r) => { r.resourceLogs[0].scopeLogs[0].scope.name = 1; }, "resourceLogs[0].scopeLogs[0].scope.name: a number, want a string"],
    ["snake_case log_records", (r) => { const s = r.resourceLogs[0].scopeLogs[0]; s.log_records = s.logRecords; delete s.logRecords; }, 'resourceLogs[0].scopeLogs[0]: unknown field "log_records"'],
  ];
  for (const [name, mutate, message] of refused) {
    test(`refuses ${name}`, () => {
      const r = request();
      const changed = mutate(r);
      const input = changed === undefined ? r : changed;
      try {
        decodeOtlpLogs(input);
        assert.fail("decoded");
      } catch (e) {
        if (!(e instanceof OtlpError)) throw e;
        assert.equal(e.code, "otlp_bad_request");
        assert.ok(e.message.startsWith(`audit: otlp request: ${message}`), e.message);
      }
    });
  }

  test("every WARN type decodes with severity 13", () => {
    const events = ["deny", "policy_rejected", "audit_gap"].map((t, i) => event(i + 1, t));
    assert.deepStrictEqual(decodeOtlpLogs(encodeOtlpLogs(events, RESOURCE)).map((r) => r.severityNumber), [13, 13, 13]);
  });

  test("input of the wrong shape gives otlp_bad_request, never a TypeError", () => {
    for (const v of [undefined, 1, "null", '{"resourceLogs":[null]}', '{"resourceLogs":[{"scopeLogs":[{"logRecords":[1]}]}]}']) {
      assert.equal(codeOf(() => decodeOtlpLogs(v), OtlpError), "otlp_bad_request", String(v));
    }
  });
});
