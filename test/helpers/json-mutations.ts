/**
 * Structural mutations of a valid JSON document, for the fuzzers of JSON parsers (SPIFFE bundles,
 * MCP messages). Portable: fast-check only, so the portable core's tests use it under Deno too.
 *
 * `mutatedJson(valid)` applies one to three edits at any path: a value replaced by hostile JSON
 * (prototype-named keys and strings, huge and negative numbers, -0, deep nesting, long strings,
 * near-miss spellings of the value it replaces), a member removed, a hostile member added, an array element
 * doubled or two swapped, or the value wrapped in an array. The result is a plain JSON value.
 */
import fc from "fast-check";

/** Keys a careless reader may trip on: prototype names, JSON-RPC and JWK members in other cases. */
export const HOSTILE_JSON_KEYS: readonly string[] = [
  "__proto__", "constructor", "prototype", "toString", "valueOf", "toJSON", "hasOwnProperty", "then", "length", "", "\u0000", "Kty", "USE", "Method", "ID",
];

const hostileKey = fc.oneof(fc.constantFrom(...HOSTILE_JSON_KEYS), fc.string({ maxLength: 6 }));

/** Objects with hostile keys; `toJSON`, `toString` and `valueOf` members that are not functions. */
export const hostileObject: fc.Arbitrary<Record<string, unknown>> = fc
  .array(fc.tuple(hostileKey, fc.jsonValue({ maxDepth: 1 })), { maxLength: 4 })
  .map((entries) => JSON.parse(`{${entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(",")}}`) as Record<string, unknown>);

/** Values that are JSON but seldom what a reader expects. */
export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
  { weight: 2, arbitrary: hostileObject },
  {
    weight: 2,
    arbitrary: fc.constantFrom<unknown>(
      null, true, false, 0, -0, -1, 1.5, 1e308, -1e308, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 4294967296, "", " ", "0", "null", "\u0000", "\ud800",
      "a".repeat(5000), "constructor", "__proto__", "toString", "hasOwnProperty", [], {}, [[]], [{}], [null], { length: 1 },
      JSON.parse('{"__proto__":{"x":1}}') as unknown,
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 200 }).map((d) => JSON.parse(`${"[".repeat(d)}${"]".repeat(d)}`) as unknown) },
);

type Path = (string | number)[];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every path to a value inside `v`, the root included (as []). */
export function jsonPaths(v: unknown, at: Path = []): Path[] {
  if (Array.isArray(v)) return [at, ...v.flatMap((x, i) => jsonPaths(x, [...at, i]))];
  if (isObject(v)) return [at, ...Object.entries(v).flatMap(([k, x]) => jsonPaths(x, [...at, k]))];
  return [at];
}

/** Variants of a string a lenient reader may take for it. */
function nearMiss(s: string): string[] {
  return [s.toUpperCase(), s.toLowerCase(), ` ${s}`, `${s} `, `${s}\u0000`, s.slice(1), `${s}x`, s.replace(/-/g, "_")];
}

type Edit =
  | { kind: "set"; path: number; value: unknown }
  | { kind: "near"; path: number; pick: number }
  | { kind: "delete" | "double" | "wrap"; path: number }
  | { kind: "add"; path: number; key: string; value: unknown }
  | { kind: "swap"; path: number; a: number; b: number };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("set" as const), path: fc.nat(), value: hostileJson }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("near" as const), path: fc.nat(), pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom("delete" as const, "double" as const, "wrap" as const), path: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("add" as const), path: fc.nat(), key: hostileKey, value: hostileJson }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("swap" as const), path: fc.nat(), a: fc.nat(), b: fc.nat() }) },
);

/** Sets own member `key` ("__proto__" included, as JSON.parse would). */
function put(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

function apply(doc: unknown, e: Edit): unknown {
  const root = { value: JSON.parse(JSON.stringify(doc) ?? "null") as unknown };
  const paths = jsonPaths(root.value).map((p) => ["value", ...p]);
  const path = paths[e.path % paths.length]!;
  let parent = root as unknown as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  const target = parent[last];
  const set = (v: unknown) => (Array.isArray(parent) ? (parent[last as number] = v) : put(parent, String(last), v));
  switch (e.kind) {
    case "set":
      set(e.value);
      break;
    case "near":
      if (typeof target === "string") set(nearMiss(target)[e.pick % 8]);
      else if (typeof target === "number") set([String(target), target + 1, -target, target * 1e20, null][e.pick % 5]);
      else set(null);
      break;
    case "delete":
      if (Array.isArray(parent)) parent.splice(last as number, 1);
      else if (parent !== (root as unknown)) delete parent[last];
      else root.value = undefined;
      break;
    case "double":
      if (Array.isArray(target) && target.length > 0) target.push(JSON.parse(JSON.stringify(target[0]) ?? "null"));
      else if (Array.isArray(parent)) parent.push(JSON.parse(JSON.stringify(target) ?? "null"));
      else set([target, target]);
      break;
    case "wrap":
      set([target]);
      break;
    case "add":
      if (isObject(target)) put(target, e.key, e.value);
      else if (Array.isArray(target)) target.push(e.value);
      else set(e.value);
      break;
    case "swap":
      if (Array.isArray(target) && target.length > 1) {
        const a = e.a % target.length, b = e.b % target.length;
        [target[a], target[b]] = [target[b], target[a]];
      }
      break;
  }
  return root.value;
}

/** `valid` with one to three edits (see the module comment); may be undefined when the root was deleted. */
export function mutatedJson(valid: unknown): fc.Arbitrary<unknown> {
  return fc.array(edit, { minLength: 1, maxLength: 3 }).map((edits) => edits.reduce(apply, valid));
}

/** Text edits of a JSON text: a span removed and something inserted. */
export function editedText(valid: string): fc.Arbitrary<string> {
  const insert = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('"', "\\", "{", "}", "[", "]", ",", ":", "\\u0000", "\\ud800", "1e999", "null", '"__proto__":'));
  return fc
    .array(fc.tuple(fc.nat(), fc.nat({ max: 12 }), insert), { minLength: 1, maxLength: 3 })
    .map((edits) => edits.reduce((t, [at, cut, ins]) => {
      const i = at % (t.length + 1);
      return t.slice(0, i) + ins + t.slice(i + cut);
    }, valid));
}
