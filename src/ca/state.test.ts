import { beforeAll, expect, test } from "bun:test";
import { CaManager } from "./manager.ts";
import { parsePersistedCa } from "./state.ts";
import { MemoryCaStorage } from "./storage.ts";
import { SMALL, TD, at, codeOf } from "./test-support.ts";

// A valid state with an active and a pending root, and a second CA's certificates to mix in.
let good: Record<string, any>;
let other: Record<string, any>;

beforeAll(async () => {
  const a = new MemoryCaStorage();
  const ca = await CaManager.init({ trustDomain: TD, settings: SMALL, storage: a, now: at(0) });
  await ca.rotateRoot(at(1));
  good = JSON.parse(a.text!);
  const b = new MemoryCaStorage();
  await CaManager.init({ trustDomain: TD, settings: SMALL, storage: b, now: at(0) });
  other = JSON.parse(b.text!);
});

const edit = (f: (s: any) => void) => () => {
  const s = structuredClone(good);
  f(s);
  return JSON.stringify(s);
};

const cases: [string, () => string, string][] = [
  ["not JSON", () => "[", "not JSON"],
  ["an array", () => "[]", "not a version 1"],
  ["version 2", edit((s) => (s.version = 2)), "not a version 1"],
  ["a bad trust domain", edit((s) => (s.trustDomain = "Bad Domain")), "bad trust domain"],
  ["a negative sequence", edit((s) => (s.bundleSequence = -1)), "bad bundle sequence"],
  ["no roots", edit((s) => delete s.roots), "no roots"],
  ["a serial that is a path", edit((s) => (s.roots[0].serial = "../x")), "no valid serial"],
  ["a serial that is not the certificate's", edit((s) => (s.roots[0].serial = s.roots[1].serial.replace(/.$/, "0"))), "has serial"],
  ["a certificate that is not PEM", edit((s) => (s.roots[0].certificate = "garbage")), "not a PEM certificate"],
  ["a key PEM in place of a certificate", edit((s) => (s.roots[0].certificate = s.roots[0].certificate.replaceAll("CERTIFICATE", "PRIVATE KEY"))), "not a PEM certificate"],
  ["an unknown root state", edit((s) => (s.roots[0].state = "old")), "bad state"],
  ["two active roots", edit((s) => { s.roots[1].state = "active"; delete s.roots[1].activateAt; }), "2 active roots"],
  ["no active root", edit((s) => (s.roots[0].state = "retiring")), "0 active roots"],
  ["a pending root without activation time", edit((s) => delete s.roots[1].activateAt), "no activation time"],
  ["a root twice", edit((s) => { s.roots[1] = { ...s.roots[0], state: "retiring" }; }), "appears twice"],
  ["no signing CA", edit((s) => delete s.signing), "no signing CA"],
  ["a signing CA recorded under another root", edit((s) => (s.signing.root = s.roots[1].serial)), "not recorded under the active root"],
  ["a signing CA issued by another CA", edit((s) => { s.signing = { ...other.signing, root: s.roots[0].serial }; }), "not issued by the active root"],
];

for (const [name, text, message] of cases) {
  test(`ca.json with ${name}: ca_corrupt`, () => {
    let err: unknown;
    try {
      parsePersistedCa(text(), "/state/ca.json");
    } catch (e) {
      err = e;
    }
    expect(codeOf(err)).toBe("ca_corrupt");
    expect((err as Error).message).toStartWith("ca: /state/ca.json: ");
    expect((err as Error).message).toContain(message);
  });
}

test("the valid state parses back to itself", () => {
  expect(parsePersistedCa(JSON.stringify(good), "ca.json")).toEqual(good as any);
});
