/**
 * The TypeScript mirror of bpf/tidegate.h against the BTF that clang wrote into the committed
 * bpf/tidegate.bpf.o (STYLE.md point 9): every struct's size, member names, order, offsets and
 * sizes; every enum's values; and the header's #defines. The same for struct tg_task_print of
 * bpf/task-print.bpf.o against src/bpf/task-print.ts. Needs bpftool (installed by the
 * project's setup); without it the test is skipped with a reason, except under CI where it fails.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { ENUMS, LAYOUT, TG_LAYOUT_VERSION, TG_MAX_PORT_RULES, TG_PROTO, TG_RULE_NONE } from "./layout.ts";
import { TASK_PRINT_LAYOUT, TG_PRINT } from "./task-print.ts";

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

function dumpBtf(path = objectPath): Map<number, BtfType> {
  const r = Bun.spawnSync([bpftool!, "btf", "dump", "file", path, "-j"], { stdout: "pipe", stderr: "pipe" });
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
  if (found.length !== 1) throw new Error(`${found.length} BTF ${kind} named ${name} (want 1; is it referenced by the programs?)`);
  return found[0]!;
}

/** A struct's size and members as BTF gives them, in the shape of LAYOUT's entries. */
function structOf(btf: Map<number, BtfType>, name: string) {
  const t = named(btf, "STRUCT", name);
  return {
    size: t.size,
    members: t.members!.map((m) => ({ name: m.name, offset: m.bits_offset / 8, size: sizeOf(btf, m.type_id), bitfield: m.bitfield_size ?? 0 })),
  };
}

function mirrorOf(struct: { size: number; members: Readonly<Record<string, { offset: number; size: number }>> }): ReturnType<typeof structOf> {
  return { size: struct.size, members: Object.entries(struct.members).map(([member, m]) => ({ name: member, offset: m.offset, size: m.size, bitfield: 0 })) };
}

const skip = bpftool === null && process.env.CI === undefined;
if (skip) console.error("layout-btf.test.ts: skipped: bpftool not found (install it, or run under CI to make this a failure)");

describe.skipIf(skip)("layout against the BTF of bpf/tidegate.bpf.o", () => {
  const btf = skip ? new Map<number, BtfType>() : dumpBtf();

  for (const [name, struct] of Object.entries(LAYOUT)) {
    test(`struct ${name}: size, and each member's name, order, offset and size`, () => {
      expect(mirrorOf(struct)).toEqual(structOf(btf, name));
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

describe.skipIf(skip)("layout against the BTF of bpf/task-print.bpf.o", () => {
  test("struct tg_task_print: size, and each member's name, order, offset and size", () => {
    expect(mirrorOf(TASK_PRINT_LAYOUT)).toEqual(structOf(dumpBtf(`${root}bpf/task-print.bpf.o`), "tg_task_print"));
  });

  test("the status values match bpf/task-print.bpf.c", () => {
    const source = readFileSync(`${root}bpf/task-print.bpf.c`, "utf8");
    const define = (name: string) => Number(new RegExp(`^#define TG_PRINT_${name}\\s+(\\d+)`, "m").exec(source)?.[1]);
    expect({ OK: define("OK"), NO_TASK: define("NO_TASK"), NO_EXE: define("NO_EXE") }).toEqual({ ...TG_PRINT });
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
