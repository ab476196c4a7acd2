/**
 * Properties of the policy as a whole, for random ordered rule sets (arbitraries.ts) that collide
 * and shadow each other often:
 * - the engine's indexed decision equals explain's rule-by-rule walk (query.ts's combining rule,
 *   implemented twice);
 * - what the kernel decides on its own (kernel-share.ts) is what the engine would have decided,
 *   whatever the connection's name and request turn out to be; TCP the kernel does not decide
 *   goes to the proxy (which asks the engine); UDP is decided by the kernel alone and exactly; the
 *   kernel's entries never overlap;
 * - the loader returns a Policy or throws PolicyError `policy_invalid` naming the file and line,
 *   for any text, never anything else, never slowly.
 * Each property also counts what it saw, so a generator that stopped reaching a case fails too.
 */
import fc from "fast-check";
import { fuzzRuns } from "../../test/fuzz-runs.ts";
import { stringify } from "yaml";
import { assert, describe, test } from "../../test/shim.ts";
import type { SpiffeId } from "../spiffe/index.ts";
import { callerArb, policyArb, queryArb, requestFieldsArb } from "./arbitraries.ts";
import { PolicyEngine } from "./engine.ts";
import { PolicyError } from "./errors.ts";
import { explain } from "./explain.ts";
import { kernelShare, kernelVerdict, type KernelEntry } from "./kernel-share.ts";
import { reachedAddress } from "./address.ts";
import { loadPolicy } from "./load.ts";
import type { Policy } from "./model.ts";
import type { Decision, Query } from "./query.ts";

/** The decision without the rule object: what is compared and what a failure prints. */
function summary(d: Decision): Record<string, unknown> {
  if (d.verdict === "allow") return { verdict: "allow", rule: d.rule.name, action: d.action, upstreamPort: d.upstreamPort };
  if (d.verdict === "inspect") return { verdict: "inspect", rule: d.rule.name };
  return { verdict: "deny", rule: d.rule?.name ?? null, reason: d.reason };
}

function show(q: Query): string {
  const http = q.http == null ? "" : ` ${q.http.method} ${q.http.path}`;
  return `${q.from} ${q.proto}/${q.port} address=${q.address?.text ?? "none"} name=${q.name ?? "none"}${http} tool=${q.tool ?? "none"}`;
}

function kindOf(d: Decision): string {
  return d.verdict === "deny" ? `deny:${d.reason}` : d.verdict;
}

function load(yaml: string): Policy {
  return loadPolicy(yaml, "random.yaml");
}

describe("loading random rule sets", () => {
  test("each rule's own proxy: bounds load as written (milliseconds, the others left to the top-level ones)", () => {
    const ms = { connect_timeout: "connectTimeoutMs", first_byte_timeout: "firstByteTimeoutMs", idle_timeout: "idleTimeoutMs" } as const;
    let withBounds = 0;
    fc.assert(
      fc.property(policyArb, (spec) => {
        const policy = load(spec.yaml);
        spec.rules.forEach((r, i) => {
          const want = r.proxy === null ? null : Object.fromEntries(r.proxy.map(([k, , v]) => [ms[k], v]));
          assert.deepEqual(policy.egress[i]!.bounds, want, `rule r${i}\n${spec.yaml}`);
          if (want !== null) withBounds++;
        });
      }),
      { numRuns: fuzzRuns(60) },
    );
    assert.ok(withBounds > 0, "no rule with bounds was generated");
  });
});

describe("engine and explain", () => {
  test("decide the same for random ordered rule sets and queries", () => {
    const seen = new Map<string, number>();
    const arb = policyArb.chain((p) => fc.tuple(fc.constant(p), fc.array(queryArb(p.rules), { minLength: 1, maxLength: 40, size: "max" })));
    fc.assert(
      fc.property(arb, ([spec, queries]) => {
        const policy = load(spec.yaml);
        const engine = new PolicyEngine(policy);
        for (const q of queries) {
          const got = engine.decide(q);
          const want = explain(policy, q).decision;
          assert.deepEqual(summary(got), summary(want), `${show(q)}\n${spec.yaml}`);
          assert.equal(got.rule, want.rule, "the same rule object");
          seen.set(kindOf(got), (seen.get(kindOf(got)) ?? 0) + 1);
        }
      }),
      { numRuns: fuzzRuns(120) },
    );
    for (const kind of ["allow", "inspect", "deny:rule", "deny:no_rule", "deny:tool"]) {
      assert.ok((seen.get(kind) ?? 0) > 0, `no ${kind} decision was generated: ${JSON.stringify([...seen])}`);
    }
  });
});

function overlap(a: KernelEntry, b: KernelEntry): boolean {
  return a.proto === b.proto && a.cidr.family === b.cidr.family && a.cidr.first <= b.cidr.last && b.cidr.first <= a.cidr.last && a.portLo <= b.portHi && b.portLo <= a.portHi;
}

/**
 * The engine's decision for `q` against the kernel's verdict for its address, port and protocol;
 * the engine asked, as the proxy asks it, for the address the connection reaches (0.0.0.0 and ::
 * reach the loopback address).
 */
function agrees(engine: PolicyEngine, share: readonly KernelEntry[], q: Query): string {
  const k = kernelVerdict(share, q.proto, q.address!, q.port);
  const d = summary(engine.decide({ ...q, address: reachedAddress(q.address!) }));
  const at = `${show(q)}: kernel ${JSON.stringify(k)}, engine ${JSON.stringify(d)}`;
  if (k.verdict === "redirect") {
    assert.equal(q.proto, "tcp", `UDP is never redirected: ${at}`);
    return "tcp:redirect";
  }
  if (k.verdict === "direct") {
    assert.deepEqual(d, { verdict: "allow", rule: k.rule, action: "direct", upstreamPort: q.port }, at);
  } else if (k.rule === null) {
    assert.equal(q.proto, "udp", `only UDP is denied without a rule: ${at}`);
    assert.deepEqual(d, { verdict: "deny", rule: null, reason: "no_rule" }, at);
  } else {
    assert.deepEqual(d, { verdict: "deny", rule: k.rule, reason: "rule" }, at);
  }
  return `${q.proto}:${k.verdict}`;
}

describe("the kernel's share", () => {
  test("decides as the engine does, whatever the name and request; its entries never overlap", () => {
    const seen = new Map<string, number>();
    const cases = (rules: Parameters<typeof queryArb>[0], from: SpiffeId) =>
      fc.array(fc.tuple(queryArb(rules, { withAddress: true, from }), fc.array(requestFieldsArb, { maxLength: 3 })), { minLength: 1, maxLength: 40, size: "max" });
    const arb = fc.tuple(policyArb, callerArb).chain(([p, caller]) => fc.tuple(fc.constant(p), fc.constant(caller), cases(p.rules, caller)));
    fc.assert(
      fc.property(arb, ([spec, caller, list]) => {
        const policy = load(spec.yaml);
        const engine = new PolicyEngine(policy);
        const share = kernelShare(policy, caller);
        for (let i = 0; i < share.length; i++) {
          for (let j = i + 1; j < share.length; j++) {
            assert.ok(!overlap(share[i]!, share[j]!), `entries overlap: ${JSON.stringify([share[i], share[j]], (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
          }
        }
        for (const [q, variants] of list) {
          const kind = agrees(engine, share, q);
          seen.set(kind, (seen.get(kind) ?? 0) + 1);
          for (const v of variants) agrees(engine, share, { ...q, ...v });
        }
      }),
      { numRuns: fuzzRuns(120) },
    );
    for (const kind of ["tcp:redirect", "tcp:deny", "tcp:direct", "udp:deny", "udp:direct"]) {
      assert.ok((seen.get(kind) ?? 0) > 0, `no ${kind} verdict was generated: ${JSON.stringify([...seen])}`);
    }
  });
});

/** Loads `text`: a frozen Policy whose engine agrees with explain, or PolicyError policy_invalid naming file and line. */
function loadsOrRefuses(text: string, probes: readonly Query[] = []): "loaded" | "refused" {
  const t0 = performance.now();
  let outcome: "loaded" | "refused";
  try {
    const policy = loadPolicy(text, "fuzz.yaml");
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.egress));
    const engine = new PolicyEngine(policy);
    for (const q of probes) assert.deepEqual(summary(engine.decide(q)), summary(explain(policy, q).decision), show(q));
    outcome = "loaded";
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    assert.equal(e.code, "policy_invalid");
    assert.match(e.message, /^policy: fuzz\.yaml:\d+: /);
    outcome = "refused";
  }
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `loading took ${ms.toFixed(0)} ms`);
  return outcome;
}

/** Characters and words YAML and the policy give meaning to, so random text gets past the first checks. */
const YAML_BITS = [
  ":", ": ", "-", "- ", " ", "  ", "\n", "\n  ", "\n    ", "[", "]", "{", "}", ",", "&a ", "*a", "!", "!!str ", "!!binary ", "|", ">", "'", '"', "#",
  "? ", "%YAML 1.2\n", "---\n", "...\n", "<<: ", "\t", "\\", "\u0000", "\u00e9", "~", "null", "1", "0x1F", "1e999", "-0", ".inf",
  "trust_domain", "example.org", "egress", "name", "from", "to", "host", "cidr", "port", "proto", "action", "deny", "intercept",
  "spiffe://example.org/a", "10.0.0.0/8", "*.example.com", "any", "http", "methods", "paths", "/v1/**", "mcp", "tools", "__proto__",
];
const TOP_KEYS = ["trust_domain", "agent", "workloads", "egress", "inbound", "federation", "dns", "__proto__", "constructor"];
const RULE_KEYS = ["name", "from", "to", "action", "mtls", "ca", "inject", "http", "mcp", "upstream", "__proto__"];

const json = fc.jsonValue({ maxDepth: 3 });
const yamlish = fc.oneof(
  fc.string({ unit: "binary", maxLength: 200 }),
  fc.string({ unit: fc.constantFrom(...YAML_BITS), maxLength: 60 }),
);
/** Random JSON values under random top-level keys, with a valid trust domain most of the time. */
const documents = fc
  .record({
    trust: fc.oneof(fc.constant<unknown>("example.org"), json),
    top: fc.dictionary(fc.oneof(fc.constantFrom(...TOP_KEYS), fc.string({ maxLength: 8 })), json, { maxKeys: 4 }),
    rules: fc.array(fc.dictionary(fc.constantFrom(...RULE_KEYS), json, { maxKeys: 6 }), { maxLength: 3 }),
    asYaml: fc.boolean(),
  })
  .map(({ trust, top, rules, asYaml }) => {
    const doc: Record<string, unknown> = { trust_domain: trust, ...top };
    if (rules.length > 0) doc["egress"] = rules;
    return asYaml ? stringify(doc) : JSON.stringify(doc);
  });

type Mutation = { kind: "drop" | "dup"; at: number } | { kind: "swap"; at: number; to: number } | { kind: "char"; at: number; ch: string };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom("drop" as const, "dup" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("swap" as const), at: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant("char" as const), at: fc.nat(), ch: fc.oneof(fc.constantFrom(..." :-[]{},*&!|>'\"#\n\t0/.", "", "  "), fc.string({ maxLength: 2 })) }),
);

function mutate(text: string, m: Mutation): string {
  if (m.kind === "char") {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.ch + text.slice(at + 1);
  }
  const lines = text.split("\n");
  const at = m.at % lines.length;
  if (m.kind === "drop") lines.splice(at, 1);
  else if (m.kind === "dup") lines.splice(at, 0, lines[at]!);
  else if (m.kind === "swap") {
    const to = m.to % lines.length;
    [lines[at], lines[to]] = [lines[to]!, lines[at]!];
  }
  return lines.join("\n");
}

describe("loadPolicy on hostile text", () => {
  test("arbitrary strings: a Policy or PolicyError, quickly", () => {
    fc.assert(fc.property(yamlish, (text) => void loadsOrRefuses(text)), { numRuns: fuzzRuns(600) });
  });

  test("random JSON values under random top-level keys: a Policy or PolicyError, quickly", () => {
    fc.assert(fc.property(documents, (text) => void loadsOrRefuses(text)), { numRuns: fuzzRuns(250) });
  });

  test("valid documents with a line dropped, duplicated or swapped, or a character changed", () => {
    const outcomes = new Set<string>();
    const arb = policyArb.chain((p) => fc.tuple(fc.constant(p.yaml), fc.array(mutation, { minLength: 1, maxLength: 3 }), fc.array(queryArb(p.rules), { maxLength: 5 })));
    fc.assert(
      fc.property(arb, ([yaml, ms, probes]) => {
        outcomes.add(loadsOrRefuses(ms.reduce(mutate, yaml), probes));
      }),
      { numRuns: fuzzRuns(200) },
    );
    assert.deepEqual([...outcomes].sort(), ["loaded", "refused"]);
  });

  test("an alias bomb is refused, quickly", () => {
    const levels = Array.from({ length: 9 }, (_, i) => `l${i + 1}: &l${i + 1} [${Array(9).fill(`*l${i}`).join(", ")}]`);
    const text = `trust_domain: example.org\nl0: &l0 "lol"\n${levels.join("\n")}\n`;
    assert.equal(loadsOrRefuses(text), "refused");
  });
});
