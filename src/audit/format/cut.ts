/**
 * Strings cut to what a text field holds (TEXT_MAX characters, docs/audit.md "Events"), so that
 * an event an emitter made too long still passes its schema: a line that failed it would stop
 * `audit verify` there, and every later event with it. The writer (src/audit/sink/audit-log.ts)
 * applies `cutLongText` to an event whose JSON is longer than TEXT_MAX, as any such string makes
 * it: a usual event costs one compare, not this walk (one length check per string).
 *
 * Guaranteed: a string of at most TEXT_MAX characters is returned as it is, and an event holding
 * none longer is returned itself (no copy). A longer string becomes its first characters and the
 * note CUT_NOTE(total), TEXT_MAX characters in all, never ending in half a surrogate pair, so a
 * reader sees it was cut and how long it was. Only strings are cut: numbers, booleans, nulls,
 * keys and the number of elements are as the emitter gave them.
 */
import { TEXT_MAX } from "./fields.ts";

/** What ends a cut string: how many characters it had. */
export const CUT_NOTE = (total: number): string => ` [cut: ${total} characters in all]`;

/** Objects and arrays are walked this deep; deeper ones (no event has them) are left as they are. */
const MAX_DEPTH = 16;

/** `text` when it fits TEXT_MAX, else its first characters and CUT_NOTE, TEXT_MAX in all. */
export function cutText(text: string): string {
  if (text.length <= TEXT_MAX) return text;
  const note = CUT_NOTE(text.length);
  let keep = TEXT_MAX - note.length;
  const last = text.charCodeAt(keep - 1);
  if (last >= 0xd800 && last <= 0xdbff) keep -= 1; // a high surrogate whose low half would be cut off
  return text.slice(0, keep) + note;
}

/** `fields` itself when no string in it (at any depth) is longer than TEXT_MAX; else a copy with each such string cut (cutText). */
export function cutLongText<T extends Readonly<Record<string, unknown>>>(fields: T): T {
  return cutIn(fields, 0) as T;
}

function cutIn(value: object, depth: number): object {
  if (depth >= MAX_DEPTH) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const cut = cutValue(value[i], depth);
      if (cut !== undefined) (out ??= value.slice())[i] = cut;
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | null = null;
  const o = value as Record<string, unknown>;
  for (const k in o) {
    const cut = cutValue(o[k], depth);
    // fromEntries keeps the key order, and a key "__proto__" as an own field
    if (cut !== undefined) (out ??= Object.fromEntries(Object.entries(o)))[k] = cut;
  }
  return out ?? value;
}

/** The value to put in place of `v`, or undefined when `v` stays. */
function cutValue(v: unknown, depth: number): unknown {
  if (typeof v === "string") return v.length > TEXT_MAX ? cutText(v) : undefined;
  if (typeof v !== "object" || v === null) return undefined;
  const cut = cutIn(v, depth + 1);
  return cut === v ? undefined : cut;
}
