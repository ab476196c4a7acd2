// Portable style: the shared test shim, so these run under Deno too (selector.ts is web-standard).
// Which selectors an entry or the policy may name: those an attestor can give, in its exact form.
import { assert, describe, test } from "../../test/shim.ts";
import { AttestError } from "./errors.ts";
import { checkSelector, SELECTOR_KEYS, selectorProblem } from "./selector.ts";

const HEX = "0123456789abcdef".repeat(4);

describe("selectorProblem", () => {
  test("the selectors of docs/attestation.md, in the attestors' forms, pass", () => {
    for (const s of [
      "unix:uid:0",
      "unix:uid:1000",
      "unix:uid:4294967295",
      "unix:user:alice",
      "unix:gid:1000",
      "unix:group:alice",
      "unix:supplementary_gid:998",
      "unix:supplementary_group:docker",
      "unix:path:/usr/bin/node",
      "unix:path:/opt/my app/bin",
      `unix:sha256:${HEX}`,
      "cgroup:path:/system.slice/x.service",
      "cgroup:path:/",
      `container:id:${HEX}`,
      "k8s:ns:payments",
      "k8s:sa:web",
      "k8s:pod-label:app:web",
      "k8s:pod-label:app.kubernetes.io/name:web",
      "k8s:pod-label:empty:",
      "k8s:pod-owner:ReplicaSet:web-7c9d8f6b5",
      "k8s:pod-owner-uid:ReplicaSet:5d6e7f80-1a2b-4c3d-9e8f-0a1b2c3d4e5f",
      "k8s:pod-uid:3f1c2a9e-7b4d-4e8a-9c61-0d2b5e8f4a17",
      "k8s:pod-image-count:3",
      "k8s:pod-init-image-count:0",
      "k8s:container-image:registry.example/web@sha256:" + HEX,
      "tidegate:workload:web",
      "tidegate:workload:a.b_c-9",
      "tidegate:inbound:email-mcp",
    ]) {
      assert.equal(selectorProblem(s), null, s);
      assert.equal(checkSelector(s), s);
    }
  });

  const refused: [string, string, RegExp][] = [
    ["an unknown type", "bogus:thing", /selector "bogus:thing" has type "bogus", which no attestor gives \(types: unix, cgroup, container, k8s, tidegate\)$/],
    ["a misspelt type", "tidgate:workload:x", /type "tidgate", which no attestor gives .*; did you mean tidegate\?$/],
    ["a SPIRE type tidegate has no attestor for", "docker:label:app:web", /type "docker", which no attestor gives/],
    ["an upper-case type", "Unix:uid:1", /type "Unix".*did you mean unix\?$/],
    ["no type at all", "uid1000", /selector "uid1000" is not TYPE:KEY:VALUE/],
    ["a misspelt key", "unix:ud:1000", /selector "unix:ud:1000": unix has no key "ud" \(unix gives unix:uid, .*\); did you mean unix:uid\?$/],
    ["a key without a value", "unix:uid", /selector "unix:uid" has no value \(unix:uid:VALUE\)/],
    ["an empty value", "unix:uid:", /has no value/],
    ["an empty key", "unix:", /unix has no key ""/],
    ["a uid that is not a number", "unix:uid:abc", /selector "unix:uid:abc": the value of unix:uid must be a decimal id .*, not "abc"$/],
    ["a uid with a leading zero (the attestor writes 1000)", "unix:uid:01000", /must be a decimal id/],
    ["a uid past 32 bits", "unix:uid:4294967296", /must be a decimal id/],
    ["a negative gid", "unix:gid:-1", /the value of unix:gid must be a decimal id/],
    ["a supplementary gid by name", "unix:supplementary_gid:docker", /the value of unix:supplementary_gid must be a decimal id/],
    ["an upper-case hash", `unix:sha256:${HEX.toUpperCase()}`, /the value of unix:sha256 must be 64 lowercase hex digits/],
    ["a short container id", "container:id:abc123", /the value of container:id must be 64 lowercase hex digits/],
    ["a relative path", "unix:path:node", /the value of unix:path must be an absolute path/],
    ["a cgroup path without its slash", "cgroup:path:system.slice", /the value of cgroup:path must be an absolute path/],
    ["a label without its value part", "k8s:pod-label:app", /the value of k8s:pod-label must be two parts, A:B/],
    ["a count that is not one", "k8s:pod-image-count:three", /the value of k8s:pod-image-count must be a decimal count/],
    ["a workload name no cgroup can have", "tidegate:workload:-x", /the value of tidegate:workload must be a workload name/],
    ["a control character", "unix:user:al\nice", /holds a control character/],
    ["a prototype member as type", "constructor:x:y", /type "constructor", which no attestor gives/],
    ["a prototype member as key", "unix:toString:y", /unix has no key "toString"/],
  ];
  for (const [name, s, message] of refused) {
    test(`refused: ${name}`, () => {
      assert.match(selectorProblem(s) ?? "passed", message);
      assert.throws(() => checkSelector(s), (e: unknown) => e instanceof AttestError && e.code === "attest_bad_selector" && e.message.startsWith("attest: selector "));
    });
  }

  test("a long selector is cut short in the message", () => {
    const why = selectorProblem(`bogus:${"x".repeat(5000)}`)!;
    assert.ok(why.length < 500, why);
  });

  test("SELECTOR_KEYS lists every type:key once", () => {
    assert.equal(new Set(SELECTOR_KEYS).size, SELECTOR_KEYS.length);
    assert.ok(SELECTOR_KEYS.includes("unix:uid") && SELECTOR_KEYS.includes("tidegate:workload") && SELECTOR_KEYS.includes("k8s:pod-label"));
  });
});
