/**
 * The TypeScript mirror of bpf/tidegate.h against the BTF that clang wrote into the committed
 * bpf/tidegate.bpf.o (STYLE.md point 9): every struct's size, member names, order, offsets and
 * sizes; every enum's values; and the header's #defines. Needs bpftool (installed by the
 * project's setup); without it the test is skipped with a reason, except under CI where it fails.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { ENUMS, LAYOUT, TG_LAYOUT_VERSION, TG_MAX_PORT_RULES, TG_PROTO, TG_RULE_NONE } from "./layout.ts";

const root = new URL("../..", import.meta.url).pathname;
const objectPath = `${root}bpf/tidegate.bpf.o`;
const headerPath = `${root}bpf/tidegate.h`;
const bpftool = Bun.which("bpftool") ?? (existsSync("/usr/sbin/bpftool") ? "/usr/sbin/bpftool" : null);

interface BtfType {
  id: number;
  kind: string;
  name: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number; bitfield_size?: number }[];
  values?: { name: string; val: number }[];
}

function dumpBtf(): Map<number, BtfType> {
  const r = Bun.spawnSync([bpftool!, "btf", "dump", "file", objectPath, "-j"], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`bpftool btf dump failed: ${r.stderr.toString()}`);
  const types = (JSON.parse(r.stdout.toString()) as { types: BtfType[] }).types;
  return new Map(types.map((t) => [t.id, t]));
}

function sizeOf(btf: Map<number, BtfType>, id: number): number {
  const t = btf.get(id);
  if (t === undefined) throw new Error(`no BTF type ${id}`);
  switch (t.kind) {
    case "INT":
    case "STRUCT":
    case "UNION":
    case "ENUM":
    case "ENUM64":
      return t.size!;
    case "TYPEDEF":
    case "VOLATILE":
    case "CONST":
    case "RESTRICT":
    case "TYPE_TAG":
      return sizeOf(btf, t.type_id!);
    case "ARRAY":
      return t.nr_elems! * sizeOf(btf, t.type_id!);
    case "PTR":
      return 8;
    default:
      throw new Error(`BTF kind ${t.kind} has no size here`);
  }
}

function named(btf: Map<number, BtfType>, kind: string, name: string): BtfType {
  const found = [...btf.values()].filter((t) => t.kind === kind && t.name === name);
  if (found.length !== 1) throw new Error(`${found.length} BTF ${kind} named ${name} in ${objectPath} (want 1; is it referenced by the programs?)`);
  return found[0]!;
}

const skip = bpftool === null && process.env.CI === undefined;
if (skip) console.error("layout-btf.test.ts: skipped: bpftool not found (install it, or run under CI to make this a failure)");

describe.skipIf(skip)("layout against the BTF of bpf/tidegate.bpf.o", () => {
  const btf = skip ? new Map<number, BtfType>() : dumpBtf();

  for (const [name, struct] of Object.entries(LAYOUT)) {
    test(`struct ${name}: size, and each member's name, order, offset and size`, () => {
      const t = named(btf, "STRUCT", name);
      const fromBtf: { size: number | undefined; members: { name: string; offset: number; size: number; bitfield: number }[] } = {
        size: t.size,
        members: t.members!.map((m) => ({
          name: m.name,
          offset: m.bits_offset / 8,
          size: sizeOf(btf, m.type_id),
          bitfield: m.bitfield_size ?? 0,
        })),
      };
      const mirror: typeof fromBtf = {
        size: struct.size,
        members: Object.entries(struct.members).map(([member, m]) => ({ name: member, offset: m.offset, size: m.size, bitfield: 0 })),
      };
      expect(mirror).toEqual(fromBtf);
    });
  }

  for (const [name, values] of Object.entries(ENUMS)) {
    test(`enum ${name}: every name and value`, () => {
      const t = named(btf, "ENUM", name);
      expect(Object.fromEntries(t.values!.map((v) => [v.name, v.val]))).toEqual(values);
    });
  }

  test("the structs in BTF named tg_* are exactly those LAYOUT mirrors", () => {
    const inBtf = [...btf.values()].filter((t) => t.kind === "STRUCT" && t.name.startsWith("tg_")).map((t) => t.name).sort();
    expect(inBtf).toEqual(Object.keys(LAYOUT).sort());
  });
});

describe("the header's #defines", () => {
  test("TG_LAYOUT_VERSION, TG_MAX_PORT_RULES, TG_RULE_NONE and the protocols match bpf/tidegate.h", () => {
    const header = readFileSync(headerPath, "utf8");
    const define = (name: string): number => {
      const m = new RegExp(`^#define ${name}\\s+(0x[0-9a-fA-F]+|\\d+)\\b`, "m").exec(header);
      if (m === null) throw new Error(`no #define ${name} in ${headerPath}`);
      return Number(m[1]);
    };
    expect({
      TG_LAYOUT_VERSION: define("TG_LAYOUT_VERSION"),
      TG_MAX_PORT_RULES: define("TG_MAX_PORT_RULES"),
      TG_RULE_NONE: define("TG_RULE_NONE"),
      TG_PROTO_TCP: define("TG_PROTO_TCP"),
      TG_PROTO_UDP: define("TG_PROTO_UDP"),
    }).toEqual({ TG_LAYOUT_VERSION, TG_MAX_PORT_RULES, TG_RULE_NONE, TG_PROTO_TCP: TG_PROTO.TCP, TG_PROTO_UDP: TG_PROTO.UDP });
  });
});
