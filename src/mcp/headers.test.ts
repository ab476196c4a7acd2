import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { assert, describe, test } from "../../test/shim.ts";
import { HEADER_MISMATCH } from "./errors.ts";
import { paramPathsOf, checkHeadersMatchBody, decodeHeaderValue, type ParamPaths } from "./headers.ts";
import { type McpNotification, type McpRequest, parseMessage } from "./message.ts";

function msg(method: string, params?: object, notification = false): McpRequest | McpNotification {
  const m = parseMessage(JSON.stringify(notification ? { jsonrpc: "2.0", method, params } : { jsonrpc: "2.0", id: 1, method, params }));
  if (m.kind !== "request" && m.kind !== "notification") throw new Error("not a request");
  return m;
}

const b64 = (s: string): string => `=?base64?${btoa(String.fromCharCode(...new TextEncoder().encode(s)))}?=`;
const call = msg("tools/call", { name: "execute_sql", arguments: { Region: "us-west1", limit: 10, dry: false, ratio: 0.5, nested: { tenant: "t1" }, nil: null, obj: {} } });

describe("checkHeadersMatchBody accepts", () => {
  const cases: [string, Record<string, string>, McpRequest | McpNotification, ParamPaths?][] = [
    ["no MCP headers", { "content-type": "application/json" }, call],
    ["matching Mcp-Method and Mcp-Name", { "mcp-method": "tools/call", "mcp-name": "execute_sql" }, call],
    ["header names in any case", { "MCP-METHOD": "tools/call", "Mcp-Name": "execute_sql" }, call],
    ["a base64 Mcp-Name", { "mcp-name": b64("execute_sql") }, call],
    ["a non-ASCII name in base64", { "mcp-name": b64("tööl") }, msg("tools/call", { name: "tööl" })],
    ["Mcp-Name of resources/read is the uri", { "mcp-name": "file:///a b" }, msg("resources/read", { uri: "file:///a b" })],
    ["Mcp-Name of prompts/get", { "mcp-method": "prompts/get", "mcp-name": "p" }, msg("prompts/get", { name: "p" })],
    ["Mcp-Name of resources/subscribe", { "mcp-name": "u" }, msg("resources/subscribe", { uri: "u" })],
    ["a string param", { "mcp-param-region": "us-west1" }, call],
    ["a param name in another case", { "Mcp-Param-REGION": "us-west1" }, call],
    ["a base64 param", { "mcp-param-region": b64("us-west1") }, call],
    ["an integer param", { "mcp-param-limit": "10" }, call],
    ["an integer param written with an exponent", { "mcp-param-limit": "1e1" }, call],
    ["a number within 1e-9", { "mcp-param-ratio": "0.5000000000001" }, call],
    ["a boolean param", { "mcp-param-dry": "false" }, call],
    ["a nested param by schema path", { "mcp-param-tenant": "t1" }, call, new Map([["tenant", ["nested", "tenant"]]])],
    ["Mcp-Method on a notification", { "mcp-method": "notifications/initialized" }, msg("notifications/initialized", undefined, true)],
    ["a plain value that only looks like a sentinel", { "mcp-name": "=?base64?" }, msg("tools/call", { name: "=?base64?" })],
  ];
  for (const [name, h, m, paths] of cases) test(name, () => assert.deepEqual(checkHeadersMatchBody(new Headers(h), m, paths), { ok: true }));
});

describe("checkHeadersMatchBody refuses with -32020", () => {
  const cases: [string, Record<string, string>, McpRequest | McpNotification, string, ParamPaths?][] = [
    ["another Mcp-Method", { "mcp-method": "tools/list" }, call, "Mcp-Method"],
    ["Mcp-Method in another case", { "mcp-method": "Tools/Call" }, call, "Mcp-Method"],
    ["a duplicated Mcp-Method", { "mcp-method": "tools/call, tools/call" }, call, "Mcp-Method"],
    ["another Mcp-Name", { "mcp-name": "safe_tool" }, call, "Mcp-Name"],
    ["a base64 Mcp-Name of another name", { "mcp-name": b64("safe_tool") }, call, "Mcp-Name"],
    ["a base64 Mcp-Name that is not base64", { "mcp-name": "=?base64?!!!!?=" }, call, "Mcp-Name"],
    ["a base64 Mcp-Name that is not UTF-8", { "mcp-name": "=?base64?/w==?=" }, call, "Mcp-Name"],
    ["the sentinel's markers in another case", { "mcp-name": `=?BASE64?${btoa("execute_sql")}?=` }, call, "Mcp-Name"],
    ["the base64 form of the plain name compared plain", { "mcp-name": btoa("execute_sql") }, call, "Mcp-Name"],
    ["Mcp-Name with a method that has none", { "mcp-name": "x" }, msg("tools/list"), "Mcp-Name"],
    ["Mcp-Name when params.name is missing", { "mcp-name": "x" }, msg("prompts/get", {}), "Mcp-Name"],
    ["Mcp-Name of resources/read naming another uri", { "mcp-name": "file:///b" }, msg("resources/read", { uri: "file:///a" }), "Mcp-Name"],
    ["another string param", { "mcp-param-region": "eu-west1" }, call, "Mcp-Param-region"],
    ["a param that is not in the body", { "mcp-param-zone": "a" }, call, "Mcp-Param-zone"],
    ["a param whose argument is null", { "mcp-param-nil": "null" }, call, "Mcp-Param-nil"],
    ["a param whose argument is an object", { "mcp-param-obj": "{}" }, call, "Mcp-Param-obj"],
    ["another integer", { "mcp-param-limit": "11" }, call, "Mcp-Param-limit"],
    ["an integer with a space inside", { "mcp-param-limit": "1 0" }, call, "Mcp-Param-limit"],
    ["an integer in hex", { "mcp-param-limit": "0xa" }, call, "Mcp-Param-limit"],
    ["a boolean as 0", { "mcp-param-dry": "0" }, call, "Mcp-Param-dry"],
    ["a boolean in capitals", { "mcp-param-dry": "False" }, call, "Mcp-Param-dry"],
    ["a nested param compared at the top level", { "mcp-param-tenant": "t1" }, call, "Mcp-Param-tenant"],
    ["a nested param at the schema path with another value", { "mcp-param-tenant": "t2" }, call, "Mcp-Param-tenant", new Map([["tenant", ["nested", "tenant"]]])],
    ["a param with a method other than tools/call", { "mcp-param-uri": "u" }, msg("resources/read", { uri: "u" }), "Mcp-Param-uri"],
    ["an inherited member name", { "mcp-param-tostring": "x" }, call, "Mcp-Param-tostring"],
  ];
  for (const [name, h, m, header, paths] of cases) {
    test(`${name}: names ${header}`, () => {
      const r = checkHeadersMatchBody(new Headers(h), m, paths);
      assert.equal(r.ok, false);
      assert.ok(!r.ok && r.code === HEADER_MISMATCH && r.code === -32020);
      assert.ok(!r.ok && r.message.startsWith(`mcp: header ${header} `), !r.ok ? r.message : "");
      for (const v of Object.values(h)) if (v.length > 3) assert.ok(!r.ok && !r.message.includes(v), "a value in the message");
    });
  }
});

describe("decodeHeaderValue", () => {
  test("property: the sentinel form of any string decodes to it", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => assert.equal(decodeHeaderValue(b64(s)), s)), { numRuns: fuzzRuns(300) });
  });
  test("a value without the sentinel is itself", () => {
    for (const v of ["", "abc", "=?base64?", "?=", "=?base64??="]) assert.equal(decodeHeaderValue(v), v === "=?base64??=" ? "" : v);
  });
});

describe("paramPathsOf", () => {
  test("maps each x-mcp-header mark (lowercase) to its argument's path, nested ones too; a mark given twice is left out", () => {
    const schema = {
      type: "object",
      properties: {
        region: { type: "string", "x-mcp-header": "Region" },
        target: { type: "object", properties: { tenant: { type: "string", "x-mcp-header": "Tenant" } } },
        a: { type: "string", "x-mcp-header": "Dup" },
        b: { type: "string", "x-mcp-header": "dup" },
      },
    };
    assert.deepEqual([...paramPathsOf(schema)], [["region", ["region"]], ["tenant", ["target", "tenant"]]]);
    assert.deepEqual([...paramPathsOf(null)], []);
  });
});
