/**
 * YAML settings files checked with valibot, with errors that point at the line: the shared front
 * half of the policy file (load.ts) and the server's settings (src/server/config.ts).
 *
 * Guaranteed: `readYaml` either returns the validated value or throws the caller's error with
 * `SUBJECT: FILE:LINE: PATH: WHY`, where LINE is the line of the deepest key of PATH the document
 * has (the key itself for an unknown key) and WHY names the offending value, cut short. Duplicate
 * keys in a mapping are errors (the yaml package's `uniqueKeys`), so a second `action:` cannot
 * quietly replace the first. Aliases and merge keys are not expanded beyond the yaml package's
 * default limits.
 */
import * as v from "valibot";
import { isSeq, LineCounter, parseDocument, type Document } from "yaml";
import { didYouMean, nearest } from "./nearest.ts";
import { printable, quote } from "../errors.ts";

/** Where a value came from, for the error of a check made after the schema (see `fail`). */
export interface YamlSource {
  readonly file: string;
  /** The 1-based line of `path` (or of its deepest ancestor the document has). */
  lineOf(path: readonly (string | number)[]): number;
}

export type FailFn = (path: readonly (string | number)[], why: string) => never;

/** `base`'s output turned into T by `convert`; the message of what it throws becomes the issue. */
export function transformed<I, T>(base: v.GenericSchema<unknown, I>, convert: (input: I) => T) {
  return v.pipe(
    base,
    v.rawTransform<I, T>(({ dataset, addIssue, NEVER }) => {
      try {
        return convert(dataset.value);
      } catch (e) {
        // The loader's message begins "policy: FILE:LINE: PATH: " already: a converter's own "policy: " goes.
        addIssue({ message: (e instanceof Error ? e.message : String(e)).replace(/^policy: /, "") });
        return NEVER;
      }
    }),
  );
}

/** A string field turned into T by `convert`. */
export function converted<T>(convert: (text: string) => T) {
  return transformed(v.string(), convert);
}

/** Any YAML value turned into T by `convert` (numbers or strings, say). */
export function convertedAny<T>(convert: (value: unknown) => T) {
  return transformed(v.unknown(), convert);
}

/** A YAML mapping with exactly these keys (valibot's objects alone would accept a list too). */
export function mapping<E extends v.ObjectEntries>(entries: E) {
  return v.pipe(
    v.custom<Record<string, unknown>>((x) => typeof x === "object" && x !== null && !Array.isArray(x), "expected a mapping"),
    v.strictObject(entries),
  );
}

function shown(x: unknown): string {
  if (x === undefined) return "nothing";
  let text: string;
  try {
    text = JSON.stringify(x) ?? String(x);
  } catch {
    // An alias inside its own anchor (`&a [*a]`) makes a value that contains itself.
    return "a value that contains itself";
  }
  // Printable ASCII only: the value is the file's, and the message may reach a terminal.
  return printable(text.length > 64 ? `${text.slice(0, 64)}...` : text);
}

function isUnknownKey(issue: v.BaseIssue<unknown>): boolean {
  return issue.type === "strict_object" && issue.expected === "never";
}

/** A valibot schema as far as the walk below reads it. */
interface SchemaNode {
  readonly kind?: string;
  readonly type?: string;
  readonly entries?: Readonly<Record<string, SchemaNode>>;
  readonly wrapped?: SchemaNode;
  readonly item?: SchemaNode;
  readonly value?: SchemaNode;
  readonly options?: readonly SchemaNode[];
  readonly pipe?: readonly SchemaNode[];
}

/** The schemas `n` stands for once optional and nullable wrappers, pipes and unions are looked through. */
function expand(n: SchemaNode | undefined, depth = 0): SchemaNode[] {
  if (n === undefined || depth > 16) return [];
  if (n.wrapped !== undefined) return expand(n.wrapped, depth + 1);
  const out: SchemaNode[] = n.entries !== undefined || n.item !== undefined || n.value !== undefined ? [n] : [];
  for (const o of n.options ?? []) out.push(...expand(o, depth + 1));
  for (const p of n.pipe ?? []) if (p !== n && p.kind === "schema") out.push(...expand(p, depth + 1));
  return out;
}

/** Every key a mapping at `path` may have under `schema`, sorted; empty when the walk cannot tell. */
export function keysAllowedAt(schema: unknown, path: readonly (string | number)[]): string[] {
  let nodes = expand(schema as SchemaNode);
  for (const key of path) {
    const next: SchemaNode[] = [];
    for (const n of nodes) {
      if (typeof key === "number") next.push(...expand(n.item));
      else next.push(...expand(n.entries?.[key] ?? n.value));
    }
    nodes = next;
  }
  return [...new Set(nodes.flatMap((n) => Object.keys(n.entries ?? {})))].sort();
}

/** "unknown key (allowed: a, b, c; did you mean b?)", or the docs when the keys cannot be told. */
function unknownKey(key: unknown, allowed: readonly string[], docsHint: string): string {
  if (allowed.length === 0) return `unknown key (allowed: see ${docsHint})`;
  const near = nearest(String(key), allowed);
  return `unknown key (allowed: ${allowed.join(", ")}${didYouMean(near)})`;
}

function describeIssue(issue: v.BaseIssue<unknown>, docsHint: string, schema?: unknown): string {
  if (isUnknownKey(issue)) {
    const path = (issue.path ?? []).map((p) => p.key as string | number);
    return unknownKey(path[path.length - 1], schema === undefined ? [] : keysAllowedAt(schema, path.slice(0, -1)), docsHint);
  }
  if (issue.type === "custom") return issue.message.replace(/^policy: /, "");
  if (issue.kind === "schema") {
    if (issue.type === "strict_object" && issue.input === undefined) return "required";
    return `expected ${issue.expected === "Object" ? "a mapping" : (issue.expected ?? "another type")}, got ${shown(issue.input)}`;
  }
  if (issue.type === "regex") return `${shown(issue.input)} ${issue.message}`;
  return issue.message.replace(/^Invalid \w+: /, "");
}

/** Printable ASCII, no space, quote or backslash. */
const PLAIN_KEY = /^[!#-[\]-~]+$/;

/**
 * `egress[2].to.port`; "(top)" for the document itself. A key that is not plain (printable ASCII
 * without space, quote or backslash) is quoted (src/errors.ts `quote`): an unknown key is the file's text, never shown as itself.
 */
export function formatPath(path: readonly (string | number)[]): string {
  let out = "";
  for (const p of path) {
    const key = typeof p === "number" ? `[${p}]` : PLAIN_KEY.test(p) ? p : quote(p);
    out += typeof p === "number" || out === "" ? key : `.${key}`;
  }
  return out === "" ? "(top)" : out;
}

/** The line of a path in `doc` (see YamlSource.lineOf): one look per level of the path, never a walk over a list (a policy of many rules would be quadratic). */
export function lineFinder(doc: Document.Parsed, lines: LineCounter) {
  return (path: readonly (string | number)[]): number => {
    for (let n = path.length; n > 0; n--) {
      const parent = n === 1 ? doc.contents : doc.getIn(path.slice(0, n - 1), true);
      const last = path[n - 1]!;
      const key = String(last);
      const items = (parent as { items?: { key?: { value?: unknown; range?: number[] }; range?: number[] }[] } | null)?.items;
      if (!Array.isArray(items)) continue;
      // A list's item by its index at once: a search per rule made a file of many rules quadratic
      // (33,000 egress rules, 4 MB, took 46 s and 1.6 GB to check).
      const item = typeof last === "number" && isSeq(parent) ? items[last] : undefined;
      const pair = item ?? items.find((p, i) => (p.key !== undefined ? String(p.key?.value) === key : String(i) === key));
      const range = pair?.key?.range ?? pair?.range;
      if (range?.[0] !== undefined) return lines.linePos(range[0]).line;
    }
    const start = (doc.contents as { range?: number[] } | null)?.range?.[0] ?? 0;
    return lines.linePos(start).line;
  };
}

export interface ReadYamlOptions {
  /** Prefix of every message: "policy", "server config". */
  readonly subject: string;
  /** Where the allowed keys are documented, for unknown-key errors. */
  readonly docsHint: string;
  readonly makeError: (message: string) => Error;
}

/**
 * Parses `text` and validates it with `schema`. Returns the output and a `fail` function that
 * throws a located error for checks made after the schema (uniqueness, combinations).
 */
export function readYaml<S extends v.GenericSchema>(
  schema: S,
  text: string,
  file: string,
  o: ReadYamlOptions,
): { value: v.InferOutput<S>; source: YamlSource; fail: FailFn } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, logLevel: "error" });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw o.makeError(`${o.subject}: ${file}:${lines.linePos(e.pos[0]).line}: not valid YAML: ${printable(e.message.split("\n")[0]!)}`);
  }
  const lineOf = lineFinder(doc, lines);
  const fail: FailFn = (path, why) => {
    throw o.makeError(`${o.subject}: ${file}:${lineOf(path)}: ${formatPath(path)}: ${why}`);
  };
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw o.makeError(`${o.subject}: ${file}:1: not usable YAML: ${printable((e as Error).message.split("\n")[0]!)}`);
  }
  const result = v.safeParse(schema, data);
  if (!result.success) {
    // An unknown key first: a misspelt key also makes the key it meant look missing.
    const issue = result.issues.find(isUnknownKey) ?? result.issues[0];
    fail((issue.path ?? []).map((p) => p.key as string | number), describeIssue(issue, o.docsHint, schema));
  }
  return { value: result.output as v.InferOutput<S>, source: { file, lineOf }, fail };
}
