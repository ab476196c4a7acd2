/**
 * Generators of hostile YAML for the fuzzers of the settings files read with ./source.ts (the
 * policy, load.fuzz.test.ts, and the server's server.yaml, src/server/config.fuzz.test.ts).
 *
 * A valid document is given as a plain value; `yamlDocument` writes it in block style (one key per
 * line, so line numbers mean something), and `mutatedDocument` writes it with one to three edits:
 * a value at any path replaced by a hostile YAML node (self-referencing aliases, tags, merge keys,
 * huge numbers, NaN, a complex key, an unknown alias) or by random JSON, a member removed, an
 * unknown or hostile key added; then, sometimes, a line dropped, doubled or swapped, or a character
 * changed. `yamlishText` is text built from the pieces YAML gives meaning to.
 */
import fc from "fast-check";

/** A node written as YAML text as it is (one line, flow style), in place of a value. */
export class RawYaml {
  constructor(readonly text: string) {}
}

/** YAML nodes a schema does not expect, each valid YAML on its own (one line, flow style). */
export const HOSTILE_NODES: readonly string[] = [
  "&c [*c]", "&c {k: *c}", "&c [[*c], 1]", "&c {a: [*c]}", "&m {a: 1}", "*nowhere", "[&x a, *x, *x]",
  "!!binary aGVsbG8=", "!!set {a, b}", "!!omap [a: 1, b: 2]", "!!pairs [a: 1]", "!!timestamp 2001-12-14t21:59:43.10-05:00",
  "!!float .nan", ".inf", "-.inf", ".NaN", "!!int 0x7fffffffffffffffff", "123456789012345678901234567890", "1e400", "-0", "0o17", "0x1F",
  "~", "null", "true", "\"\"", "''", "!custom x", "!!str", "!!map {}", "!!seq []", "{}", "[]", "[[[[[[[[1]]]]]]]]", "{? [a, b]: c}",
  "{? {a: 1}: 2}", "{<<: {a: 1}}", "\"\\u0000\"", "\"\\ud800\"", "\"\\t \\n\"", "'spiffe://example.org/a'", "\"1/s\"", "10000000000000000/s",
  "\"99999999999h\"", "\"-1s\"", "0s", "\"1x\"", "\"[::1]:99999\"", "\"127.0.0.1:0\"", "\"https://\"", "\"/\\u0000\"",
];

/** Keys worth adding: prototype names, near-misses, and keys no settings file knows. */
export const HOSTILE_KEYS: readonly string[] = ["__proto__", "constructor", "prototype", "toString", "valueOf", "hasOwnProperty", "<<", "", " ", "x", "0", "Name"];

const json = fc.jsonValue({ maxDepth: 2 });

/** A replacement value: a hostile node, random JSON, or a long string. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...HOSTILE_NODES).map((t) => new RawYaml(t)) },
  { weight: 2, arbitrary: json },
  { weight: 1, arbitrary: fc.string({ minLength: 200, maxLength: 3000 }) },
);

function scalar(v: unknown): string {
  if (v instanceof RawYaml) return v.text;
  if (v === null) return "null";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  // Objects and arrays inside flow style: JSON is YAML.
  return JSON.stringify(v) ?? "null";
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof RawYaml);
}

function emit(v: unknown, indent: string, out: string[]): void {
  if (Array.isArray(v)) {
    for (const item of v) {
      if ((isMap(item) && Object.keys(item).length > 0) || (Array.isArray(item) && item.length > 0)) {
        const inner: string[] = [];
        emit(item, `${indent}  `, inner);
        out.push(`${indent}- ${inner[0]!.trimStart()}`, ...inner.slice(1));
      } else out.push(`${indent}- ${scalar(item)}`);
    }
    return;
  }
  for (const [k, item] of Object.entries(v as Record<string, unknown>)) {
    const key = /^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? k : JSON.stringify(k);
    if ((isMap(item) && Object.keys(item).length > 0) || (Array.isArray(item) && item.length > 0)) {
      out.push(`${indent}${key}:`);
      emit(item, `${indent}  `, out);
    } else out.push(`${indent}${key}: ${scalar(item)}`);
  }
}

/** `doc` (a mapping) in block style, one line per key or item; RawYaml values written as they are. */
export function yamlDocument(doc: Record<string, unknown>): string {
  const out: string[] = [];
  emit(doc, "", out);
  return `${out.join("\n")}\n`;
}

type Path = (string | number)[];

/** Every path to a value inside `v` (the root excluded). */
export function pathsOf(v: unknown, at: Path = []): Path[] {
  if (Array.isArray(v)) return v.flatMap((x, i) => [[...at, i], ...pathsOf(x, [...at, i])]);
  if (isMap(v)) return Object.entries(v).flatMap(([k, x]) => [[...at, k], ...pathsOf(x, [...at, k])]);
  return [];
}

type Edit =
  | { kind: "set"; path: number; value: unknown }
  | { kind: "delete"; path: number }
  | { kind: "add"; path: number; key: string; value: unknown };

type LineEdit = { kind: "drop" | "dup" | "indent"; at: number } | { kind: "swap"; at: number; to: number } | { kind: "char"; at: number; ch: string };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("set" as const), path: fc.nat(), value: hostileValue }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), path: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("add" as const), path: fc.nat(), key: fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 6 })), value: hostileValue }),
  },
);

const lineEdit: fc.Arbitrary<LineEdit> = fc.oneof(
  fc.record({ kind: fc.constantFrom("drop" as const, "dup" as const, "indent" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("swap" as const), at: fc.nat(), to: fc.nat() }),
  fc.record({ kind: fc.constant("char" as const), at: fc.nat(), ch: fc.oneof(fc.constantFrom(..." :-[]{},*&!|>'\"#\n\t0/.?%@`", "", "  "), fc.string({ maxLength: 2 })) }),
);

/** Sets own member `key` of `o`, "__proto__" included (as an own member, like a parsed key). */
function put(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A deep copy that keeps RawYaml values as they are. */
function clone(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(clone);
  if (!isMap(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) put(out, k, clone(x));
  return out;
}

function applyEdit(doc: unknown, e: Edit): unknown {
  const copy = clone(doc);
  const paths = [[] as Path, ...pathsOf(copy)];
  const path = paths[e.path % paths.length]!;
  if (path.length === 0) {
    if (e.kind === "add" && isMap(copy)) put(copy, e.key, e.value);
    return copy;
  }
  let parent = copy as Record<string | number, unknown>;
  for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  const set = (value: unknown) => (Array.isArray(parent) ? (parent[last as number] = value) : put(parent, String(last), value));
  if (e.kind === "set") set(e.value);
  else if (e.kind === "delete") {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (isMap(target)) put(target, e.key, e.value);
    else if (Array.isArray(target)) target.push(e.value);
    else set(e.value);
  }
  return copy;
}

function applyLineEdit(text: string, m: LineEdit): string {
  if (m.kind === "char") {
    const at = m.at % (text.length + 1);
    return text.slice(0, at) + m.ch + text.slice(at + 1);
  }
  const lines = text.split("\n");
  const at = m.at % lines.length;
  if (m.kind === "swap") {
    const to = m.to % lines.length;
    [lines[at], lines[to]] = [lines[to]!, lines[at]!];
  } else if (m.kind === "drop") lines.splice(at, 1);
  else if (m.kind === "dup") lines.splice(at, 0, lines[at]!);
  else lines[at] = ` ${lines[at]!}`;
  return lines.join("\n");
}

/** `valid` written with one to three value edits and up to two line edits. */
export function mutatedDocument(valid: Record<string, unknown>): fc.Arbitrary<string> {
  return fc
    .tuple(fc.array(edit, { minLength: 1, maxLength: 3 }), fc.array(lineEdit, { maxLength: 2 }))
    .map(([edits, lineEdits]) => {
      const doc = edits.reduce<unknown>((d, e) => applyEdit(d, e), valid);
      return lineEdits.reduce(applyLineEdit, yamlDocument(isMap(doc) ? doc : { value: doc }));
    });
}

/** Characters and words YAML gives meaning to, so random text gets past the first checks. */
const YAML_BITS = [
  ":", ": ", "-", "- ", " ", "  ", "\n", "\n  ", "\n    ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "!", "!!str ", "!!binary ",
  "!!set ", "!!omap ", "|", ">", "'", '"', "#", "? ", "%YAML 1.2\n", "%TAG ! tag:x,2000:\n", "---\n", "...\n", "<<: ", "\t", "\\", "\u0000",
  "\u00e9", "\ufeff", "~", "null", "1", "0x1F", "1e999", ".nan", "-0", "__proto__", "toString",
];

/** Text of YAML pieces and `words` (the settings file's own keys and values), or arbitrary text. */
export function yamlishText(words: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.string({ unit: fc.constantFrom(...YAML_BITS, ...words), maxLength: 60 }),
  );
}
