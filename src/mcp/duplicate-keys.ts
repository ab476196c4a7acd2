/**
 * Finds an object key given twice in a JSON text. JSON.parse keeps the last value of a repeated
 * key; another parser (the MCP server's) may keep the first, so `{"name":"allowed","name":"denied"}`
 * could be decided as one tool and run as the other. Messages with a repeated key are refused.
 * "Twice" is after case folding (`foldKey`): Go's encoding/json matches `Name`, `NAME`, and even
 * `nameſ`-style folds to the field `name`, so `{"name":"read_file","Name":"delete_all"}` is two
 * names to a Go server.
 *
 * Runs over text JSON.parse has already accepted (so the structure is well formed), in one pass:
 * a stack of the keys seen in each open object; keys are compared decoded ("a" and "\u0061" are
 * the same key) and folded. Returns the first repeated key's decoded text, or null.
 */
export function firstDuplicateKey(text: string): string | null {
  const stack: (Set<string> | null)[] = [];
  /** In an object, the next string is a key (after "{" or ","). */
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
      expectKey = false;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      expectKey = stack.at(-1) instanceof Set;
    } else if (c === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      for (; j < text.length; j++) {
        const d = text.charCodeAt(j);
        if (d === 0x5c /* \ */) {
          escaped = true;
          j++;
        } else if (d === 0x22) break;
      }
      if (expectKey) {
        const raw = text.slice(i, j + 1);
        const key = escaped ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        const seen = stack.at(-1)!;
        const folded = foldKey(key);
        if (seen.has(folded)) return key;
        seen.add(folded);
        expectKey = false;
      }
      i = j;
    }
  }
  return null;
}

/**
 * A key as case-insensitive matchers see it: upper- then lower-cased (so the long s "ſ" is "s" and
 * the Kelvin sign is "k", as Unicode case folding has them), NULs removed (some decoders stop a
 * key there). Stricter than any one parser, which only refuses more.
 */
export function foldKey(key: string): string {
  // Most keys are lowercase ASCII already: nothing to fold (the common case, checked cheaply).
  let plain = true;
  for (let i = 0; i < key.length && plain; i++) {
    const c = key.charCodeAt(i);
    plain = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d || c === 0x2e || c === 0x2f;
  }
  return plain ? key : key.replaceAll("\u0000", "").toUpperCase().toLowerCase();
}

/**
 * For `members`, a finder of a key of an object that is none of them as written but folds
 * (`foldKey`) to one (`Tools`, `toolſ`, `DESCRIPTION`): a case-insensitive decoder (Go's
 * encoding/json) reads it as that member while the gate, matching exactly, does not. The finder
 * gives null when there is none.
 */
export function nearMember(members: readonly string[]): (o: Readonly<Record<string, unknown>>) => string | null {
  const exact = new Set(members);
  const folded = new Set(members.map(foldKey));
  return (o) => {
    for (const k of Object.keys(o)) if (!exact.has(k) && folded.has(foldKey(k))) return k;
    return null;
  };
}
