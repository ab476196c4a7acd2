import { assert, describe, test } from "../../../test/shim.ts";
import { GrowingBytes } from "./growing-bytes.ts";

describe("GrowingBytes", () => {
  test("keeps what was appended, in order, however it was split", () => {
    const g = new GrowingBytes(0);
    const want: number[] = [];
    for (let i = 0; i < 300; i++) {
      const piece = Uint8Array.from({ length: i % 7 }, (_, k) => (i + k) & 255);
      g.append(piece);
      want.push(...piece);
    }
    assert.equal(g.length, want.length);
    assert.deepEqual([...g.view()], want);
    assert.deepEqual([...g.copy()], want);
  });

  test("16 KiB a byte at a time: the array is replaced only on doubling, so each byte is copied O(1) times", () => {
    const g = new GrowingBytes(1);
    let replaced = 0;
    let copied = 0;
    for (let i = 0; i < 16 * 1024; i++) {
      const before = g.array;
      g.append(Uint8Array.of(i & 255));
      if (g.array !== before) {
        replaced++;
        copied += i;
      }
    }
    assert.equal(replaced, 14);
    assert.ok(copied < 16 * 1024, `${copied} bytes copied on growing`);
  });

  test("a view keeps its bytes across appends; a copy is its own", () => {
    const g = new GrowingBytes(4);
    g.append(Uint8Array.of(1, 2, 3));
    const view = g.view();
    const copy = g.copy();
    g.append(Uint8Array.of(4, 5, 6, 7, 8));
    assert.deepEqual([...view], [1, 2, 3]);
    copy[0] = 9;
    assert.deepEqual([...g.view()], [1, 2, 3, 4, 5, 6, 7, 8]);
  });
});
