/**
 * Test support (never used by the verifier): a DER element tree for structure-aware fuzzing.
 * `toTree` reads bytes into nested elements (every constructed tag is opened; primitive contents,
 * OCTET and BIT STRINGs included, are kept as bytes) and `fromTree` writes a tree back with
 * correct, minimal lengths. A fuzzer edits the tree (replaces, removes or doubles an element) and writes it back, so
 * the result is well-framed DER that reaches deep into a parser instead of failing at a length.
 */
import { readTlv } from "./der.ts";
import { tlv } from "./der-write.ts";

export type DerNode = { readonly tag: number; readonly children: readonly DerNode[] } | { readonly tag: number; readonly bytes: Uint8Array };

/** The tree of the DER in `bytes[from, to)` (elements one after another). Throws DerError. */
export function toTree(bytes: Uint8Array, from = 0, to = bytes.length): DerNode[] {
  const out: DerNode[] = [];
  for (let pos = from; pos < to; ) {
    const t = readTlv(bytes, pos, to);
    out.push((t.tag & 0x20) !== 0 ? { tag: t.tag, children: toTree(bytes, t.valueStart, t.end) } : { tag: t.tag, bytes: bytes.slice(t.valueStart, t.end) });
    pos = t.end;
  }
  return out;
}

/** The DER of `nodes`, one after another (der-write.ts `tlv` for each). */
export function fromTree(nodes: readonly DerNode[]): Uint8Array {
  const parts = nodes.map((n) => tlv(n.tag, "children" in n ? fromTree(n.children) : n.bytes));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Every element of `nodes` in document order, with its path of child indexes. */
export function walkTree(nodes: readonly DerNode[], at: number[] = []): { element: DerNode; path: number[] }[] {
  return nodes.flatMap((element, i) => [{ element, path: [...at, i] }, ...("children" in element ? walkTree(element.children, [...at, i]) : [])]);
}

/** `nodes` with the element at `path` replaced by `replace(old)`: none (removed), one, or several. */
export function editTree(nodes: readonly DerNode[], path: readonly number[], replace: (old: DerNode) => DerNode[]): DerNode[] {
  const [i, ...rest] = path;
  return nodes.flatMap((n, k) => {
    if (k !== i) return [n];
    if (rest.length === 0) return replace(n);
    if (!("children" in n)) return [n];
    return [{ tag: n.tag, children: editTree(n.children, rest, replace) }];
  });
}
