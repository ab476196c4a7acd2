/**
 * The measuring pieces of bench/footprint.ts: bare Bun binaries compiled as scripts/build.ts
 * compiles dist/tidegate, the wall time of a command run to its end, the memory of a process and
 * its descendants, and the report (Markdown and the chart's input).
 */
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { median, memory } from "./lib-measure.ts";
import type { Chart } from "./lib-svg.ts";

/** scripts/build.ts's flags: the binary reads no .env, bunfig.toml or tsconfig.json where it runs. */
export const COMPILE_FLAGS = ["--compile", "--bytecode", "--format=esm", "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--no-compile-autoload-tsconfig"] as const;

/**
 * What the bare binaries run: a hello-world, a hello-world HTTP server (its port on stdout), and
 * the runtime floor: only what `tidegate up` uses of the runtime and none of tidegate's code (two
 * TLS listeners, one asking for client certificates; an HTTP server on a Unix socket; one TLS
 * fetch; SQLite in WAL mode; one FFI call), given its folder, certificate and key as arguments;
 * it prints "ready" when it has done each once.
 */
export const BARE_SOURCES = {
  hello: `console.log("hello");\n`,
  serve: `const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hello") });\nconsole.log(server.port);\n`,
  floor: [
    `import { Database } from "bun:sqlite";`,
    `import { dlopen } from "bun:ffi";`,
    `const [dir, certFile, keyFile] = process.argv.slice(2);`,
    `const cert = await Bun.file(certFile).text(), key = await Bun.file(keyFile).text();`,
    "const db = new Database(`${dir}/floor.db`); db.run(\"PRAGMA journal_mode=WAL\"); db.run(\"create table if not exists t (a)\"); db.run(\"insert into t values (1)\");",
    `const a = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert, key }, fetch: () => new Response("a") });`,
    `Bun.serve({ hostname: "127.0.0.1", port: 0, tls: { cert, key, requestCert: true, rejectUnauthorized: false }, fetch: () => new Response("b") });`,
    "Bun.serve({ unix: `${dir}/floor.sock`, fetch: () => new Response(\"u\") });",
    "await fetch(`https://127.0.0.1:${a.port}/`, { tls: { rejectUnauthorized: false } });",
    `dlopen("libc.so.6", { getpid: { args: [], returns: "i32" } }).symbols.getpid();`,
    `console.log("ready");`,
    `setInterval(() => {}, 1 << 30);`,
    "",
  ].join("\n"),
} as const;

/** Compiles `source` into `dir/name` with this Bun and COMPILE_FLAGS; the binary's path. */
export function compileBare(dir: string, name: keyof typeof BARE_SOURCES): string {
  const src = join(dir, `${name}.ts`);
  const out = join(dir, name);
  writeFileSync(src, BARE_SOURCES[name]);
  const r = Bun.spawnSync([process.execPath, "build", ...COMPILE_FLAGS, src, "--outfile", out], { cwd: dir, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`bench: bun build --compile ${name}.ts exited ${r.exitCode}: ${r.stderr.toString()}`);
  return out;
}

/** Milliseconds from spawn to exit of `argv` (output discarded); fails unless it exits 0. */
export function wallMs(argv: readonly string[]): number {
  const t0 = performance.now();
  const r = Bun.spawnSync([...argv], { stdin: "ignore", stdout: "ignore", stderr: "pipe", cwd: "/" });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`bench: ${argv.join(" ")} exited ${r.exitCode}: ${r.stderr.toString().slice(-500)}`);
  return ms;
}

/** `pid` and every descendant (through /proc/PID/task/TID/children). */
export function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone
    }
    for (const t of tids) {
      try {
        out.push(...readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {
        // gone meanwhile
      }
    }
  }
  return out;
}

/** VmRSS and VmHWM of a process tree, added up, KiB; and how many processes. */
export function treeMemory(pid: number): { rssKiB: number; hwmKiB: number; processes: number } {
  const pids = tree(pid);
  let rssKiB = 0;
  let hwmKiB = 0;
  for (const p of pids) {
    const m = memory(p);
    rssKiB += m.rssKiB;
    hwmKiB += m.hwmKiB;
  }
  return { rssKiB, hwmKiB, processes: pids.length };
}

export const TARGETS = { startupMs: 50, rssRatio: 1.5 } as const;

/** One repetition of the idle-memory measurement, the processes side by side. */
export interface RssSample {
  readonly rep: number;
  readonly tidegate: { rssKiB: number; hwmKiB: number; processes: number; readyS: number };
  readonly bare: { rssKiB: number; hwmKiB: number; processes: number; readyS: number };
  /** The runtime floor (BARE_SOURCES.floor), when measured. */
  readonly floor?: { rssKiB: number; hwmKiB: number; processes: number; readyS: number };
}

export interface Footprint {
  readonly date: string;
  readonly command: string;
  readonly bun: string;
  readonly tidegateVersion: string;
  readonly size: { tidegate: number; hello: number; serve: number };
  readonly startup: { runs: number; tidegate: number[]; hello: number[] };
  readonly idleS: number;
  /** Empty when the idle memory was not measured (--no-rss). */
  readonly rss: readonly RssSample[];
}

const q = (xs: readonly number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
};
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const x2 = (r: number) => (Number.isFinite(r) ? `${r.toFixed(2)}x` : "n/a");

/** The medians and ratios the report and the chart show. */
export function summarize(f: Footprint) {
  const startup = { tidegate: median(f.startup.tidegate), hello: median(f.startup.hello) };
  const rss = { tidegate: median(f.rss.map((s) => s.tidegate.rssKiB)), bare: median(f.rss.map((s) => s.bare.rssKiB)) };
  const rssRatio = median(f.rss.map((s) => s.tidegate.rssKiB / s.bare.rssKiB));
  return { startup, rss, rssRatio, startupMet: startup.tidegate <= TARGETS.startupMs, rssMet: rssRatio <= TARGETS.rssRatio };
}

export function markdownFootprint(f: Footprint): string {
  const s = summarize(f);
  const lines = [
    `Command: \`${f.command}\` (${f.date}, Bun ${f.bun}; ${f.tidegateVersion}; startup: ${f.startup.runs} runs of each after warm-ups, interleaved; memory: ${f.rss.length > 0 ? `${f.rss.length} repetition${f.rss.length === 1 ? "" : "s"}, tidegate, the bare server and the runtime floor side by side, sampled ${f.idleS} s after each was ready` : "not measured"})`,
    "",
    "| figure | tidegate | bare Bun, compiled the same way | ratio | target | result |",
    "|---|---|---|---|---|---|",
    `| binary size | ${mib(f.size.tidegate)} | ${mib(f.size.hello)} (\`console.log("hello")\`; the \`Bun.serve\` one: ${mib(f.size.serve)}) | ${x2(f.size.tidegate / f.size.hello)} | | |`,
    `| startup, median of ${f.startup.runs} (p90) | ${s.startup.tidegate.toFixed(1)} ms (${q(f.startup.tidegate, 0.9).toFixed(1)}), \`tidegate version\` | ${s.startup.hello.toFixed(1)} ms (${q(f.startup.hello, 0.9).toFixed(1)}), hello-world | ${x2(s.startup.tidegate / s.startup.hello)} | ≤ ${TARGETS.startupMs} ms | ${s.startupMet ? "met" : "**missed**"} |`,
  ];
  if (f.rss.length > 0) {
    lines.push(`| RSS after ${f.idleS} s idle, median of ${f.rss.length} | ${(s.rss.tidegate / 1024).toFixed(1)} MiB, \`tidegate up --foreground\` | ${(s.rss.bare / 1024).toFixed(1)} MiB, \`Bun.serve\` hello-world | ${x2(s.rssRatio)} (median of the per-repetition ratios) | ≤ ${TARGETS.rssRatio}x | ${s.rssMet ? "met" : "**missed**"} |`);
    lines.push("", "Per repetition, RSS tidegate / bare (ratio; peak RSS; processes; seconds from start to ready):", "");
    for (const r of f.rss) {
      const one = (m: RssSample["tidegate"]) => `${(m.rssKiB / 1024).toFixed(1)} MiB (peak ${(m.hwmKiB / 1024).toFixed(1)}; ${m.processes} process${m.processes === 1 ? "" : "es"}; ready in ${m.readyS.toFixed(1)} s)`;
      lines.push(`- rep ${r.rep}: ${one(r.tidegate)} / ${one(r.bare)}: ${x2(r.tidegate.rssKiB / r.bare.rssKiB)}${r.floor ? `; runtime floor ${one(r.floor)}: ${x2(r.floor.rssKiB / r.bare.rssKiB)} of the bare server` : ""}`);
    }
    const floors = f.rss.flatMap((r) => (r.floor ? [r.floor.rssKiB / r.bare.rssKiB] : []));
    if (floors.length > 0) {
      const sorted = [...floors].sort((x, y) => x - y);
      lines.push("", `Runtime floor (a compiled Bun program doing only what \`tidegate up\` uses of the runtime: TLS listeners, a TLS fetch, a Unix-socket server, SQLite, FFI; none of tidegate's code): median ${x2(sorted[Math.floor(sorted.length / 2)]!)} the bare server's RSS, against the target's ${TARGETS.rssRatio}x.`);
    }
  } else {
    lines.push(`| RSS after ${f.idleS} s idle | not measured (--no-rss) | | | ≤ ${TARGETS.rssRatio}x | |`);
  }
  lines.push("", `Startup runs, ms: tidegate [${f.startup.tidegate.map((v) => v.toFixed(1)).join(", ")}]; hello-world [${f.startup.hello.map((v) => v.toFixed(1)).join(", ")}]`);
  return lines.join("\n");
}

export function chartFootprint(f: Footprint): Chart {
  const s = summarize(f);
  const rss = f.rss.length > 0;
  return {
    title: "Footprint (bench/footprint.ts): dist/tidegate beside bare Bun binaries compiled the same way, ratios to bare Bun",
    baseline: "bare Bun",
    paths: ["bare Bun", "tidegate"],
    highlight: ["tidegate"],
    groups: [
      { label: "binary size", better: "lower", unit: "MiB", values: { "bare Bun": f.size.hello / 2 ** 20, tidegate: f.size.tidegate / 2 ** 20 } },
      { label: `startup, median of ${f.startup.runs}`, better: "lower", unit: "ms", values: { "bare Bun": s.startup.hello, tidegate: s.startup.tidegate } },
      { label: rss ? `RSS after ${f.idleS} s idle, median of ${f.rss.length}` : "RSS (not measured)", better: "lower", unit: "MiB", values: rss ? { "bare Bun": s.rss.bare / 1024, tidegate: s.rss.tidegate / 1024 } : {} },
    ],
    footer: {
      date: f.date,
      command: f.command,
      reps: rss ? f.rss.length : null,
      note: `bare Bun: console.log("hello") for size and startup, a Bun.serve hello-world for RSS; tidegate: \`tidegate version\` for startup, \`tidegate up --foreground\` for RSS; targets: startup ≤ ${TARGETS.startupMs} ms, RSS ≤ ${TARGETS.rssRatio}x`,
    },
  };
}
