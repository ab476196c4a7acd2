import { assert, describe, rejectionOf, test } from "../../test/shim.ts";
import { classify } from "./classify.ts";
import { McpError } from "./errors.ts";
import { canonicalJson, sha256Hex } from "./json.ts";
import { type McpNotification, type McpRequest, parseMessage } from "./message.ts";

function req(method: string, params?: object): McpRequest | McpNotification {
  const m = parseMessage(JSON.stringify({ jsonrpc: "2.0", id: 9, method, params }));
  if (m.kind !== "request") throw new Error("not a request");
  return m;
}

describe("classify", () => {
  test("a tools/call gives the tool and the SHA-256 of its canonical arguments", async () => {
    const c = await classify(req("tools/call", { name: "get_weather", arguments: { b: [1, { d: 2, c: "é" }], a: null } }));
    assert.deepEqual(c, { kind: "tool_call", tool: "get_weather", argsSha256: await sha256Hex('{"a":null,"b":[1,{"c":"é","d":2}]}') });
  });

  test("argsSha256 ignores key order and whitespace, and absent arguments hash as {}", async () => {
    const a = parseMessage('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"x":1,"y":{"q":true,"p":"s"}}}}');
    const b = parseMessage('{ "jsonrpc":"2.0", "id":1, "method":"tools/call", "params": {"arguments": { "y": {"p": "s", "q": true}, "x": 1 }, "name": "t"} }');
    assert.ok(a.kind === "request" && b.kind === "request");
    assert.deepEqual(await classify(a), await classify(b));
    const none = await classify(req("tools/call", { name: "t" }));
    assert.deepEqual(none, { kind: "tool_call", tool: "t", argsSha256: await sha256Hex("{}") });
    assert.equal(await sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  const kinds: [string, object | undefined, object][] = [
    ["resources/read", { uri: "file:///a" }, { kind: "resource_read", uri: "file:///a" }],
    ["prompts/get", { name: "p" }, { kind: "prompt_get", name: "p" }],
    ["tools/list", undefined, { kind: "tools_list" }],
    ["resources/list", { cursor: "c" }, { kind: "resources_list" }],
    ["prompts/list", undefined, { kind: "prompts_list" }],
    ["initialize", { protocolVersion: "2025-11-25" }, { kind: "initialize" }],
    ["ping", undefined, { kind: "other", method: "ping" }],
    ["server/discover", undefined, { kind: "other", method: "server/discover" }],
    ["toString", undefined, { kind: "other", method: "toString" }],
  ];
  for (const [method, params, want] of kinds) {
    test(`${method} is ${JSON.stringify(want)}`, async () => {
      assert.deepEqual(await classify(req(method, params)), want);
    });
  }

  test("a notification is a notification, whatever its method", async () => {
    const n = parseMessage('{"jsonrpc":"2.0","method":"tools/call","params":{}}');
    assert.ok(n.kind === "notification");
    assert.deepEqual(await classify(n), { kind: "notification", method: "tools/call" });
  });
});

describe("classify refuses with mcp_invalid_params", () => {
  const cases: [string, string, object | undefined][] = [
    ["a tools/call without params", "tools/call", undefined],
    ["a tools/call without a name", "tools/call", { arguments: {} }],
    ["a tools/call with a numeric name", "tools/call", { name: 5 }],
    ["a tools/call with an empty name", "tools/call", { name: "" }],
    ["a tools/call with a name of 129 characters", "tools/call", { name: "a".repeat(129) }],
    ["a tools/call with a space in its name", "tools/call", { name: "a b" }],
    ["a tools/call with a glob in its name", "tools/call", { name: "a*" }],
    ["a tools/call with a slash in its name", "tools/call", { name: "a/b" }],
    ["a tools/call with non-ASCII in its name", "tools/call", { name: "tööl" }],
    ["a tools/call with array arguments", "tools/call", { name: "t", arguments: [1] }],
    ["a tools/call with string arguments", "tools/call", { name: "t", arguments: "x" }],
    ["a resources/read without a uri", "resources/read", {}],
    ["a resources/read with a numeric uri", "resources/read", { uri: 1 }],
    ["a prompts/get without a name", "prompts/get", {}],
  ];
  for (const [name, method, params] of cases) {
    test(name, async () => {
      const e = await rejectionOf(classify(req(method, params)), McpError);
      assert.equal(e.code, "mcp_invalid_params");
      assert.equal(e.requestId, 9);
    });
  }

  test("every byte: a tool name of one character is accepted exactly for letters, digits, '_', '-', '.'", async () => {
    for (let b = 0; b < 256; b++) {
      const c = String.fromCharCode(b);
      const ok = /[A-Za-z0-9_.-]/.test(c);
      const got = await classify(req("tools/call", { name: c })).then(
        () => true,
        (e) => (e instanceof McpError && e.code === "mcp_invalid_params" ? false : Promise.reject(e)),
      );
      assert.equal(got, ok, `byte ${b}`);
    }
    assert.equal(((await classify(req("tools/call", { name: "a".repeat(128) }))) as { tool: string }).tool.length, 128);
  });
});

describe("canonicalJson", () => {
  const cases: [unknown, string][] = [
    [{ b: 1, a: [true, null, "x\n"], c: { z: 1.5, y: -0 } }, '{"a":[true,null,"x\\n"],"b":1,"c":{"y":0,"z":1.5}}'],
    [{ "é": 1, e: 2, E: 3 }, '{"E":3,"e":2,"é":1}'],
    [[], "[]"],
    [1e21, "1e+21"],
  ];
  for (const [value, want] of cases) test(want, () => assert.equal(canonicalJson(value), want));
});
