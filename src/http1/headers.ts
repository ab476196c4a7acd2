/**
 * The header (or trailer) fields of one message, in the order sent, names as sent. Look-ups are
 * case-insensitive (RFC 9110 section 5.1); the lowercase names are built on the first look-up.
 */
import { asciiLower } from "./bytes.ts";

/** `[name, value]`: the name as sent, the value without its surrounding whitespace. */
export type Header = readonly [name: string, value: string];

export class HeaderList implements Iterable<Header> {
  /** In the order received. */
  readonly entries: readonly Header[];
  #lower: string[] | null = null;

  constructor(entries: readonly Header[]) {
    this.entries = entries;
  }

  get length(): number {
    return this.entries.length;
  }

  [Symbol.iterator](): Iterator<Header> {
    return this.entries[Symbol.iterator]();
  }

  /** The lowercase names, one per entry. */
  names(): readonly string[] {
    if (this.#lower === null) this.#lower = this.entries.map(([n]) => asciiLower(n));
    return this.#lower;
  }

  /** The values of every field named `name` (any case), in order. */
  getAll(name: string): string[] {
    const want = asciiLower(name);
    const names = this.names();
    const out: string[] = [];
    for (let i = 0; i < names.length; i++) if (names[i] === want) out.push(this.entries[i]?.[1] ?? "");
    return out;
  }

  /**
   * The value of `name` (any case); several fields of that name are joined with ", " as RFC 9110
   * section 5.3 allows (not for Set-Cookie: use getAll). Null when absent.
   */
  get(name: string): string | null {
    const all = this.getAll(name);
    return all.length === 0 ? null : all.length === 1 ? (all[0] ?? "") : all.join(", ");
  }

  has(name: string): boolean {
    return this.names().includes(asciiLower(name));
  }
}

export const NO_HEADERS: HeaderList = new HeaderList(Object.freeze([]));
