/**
 * The files a compiled binary carries inside itself: libz.so.1, libelf.so.1, libbpf.so.1 (copied
 * from the build machine's Debian packages, never committed), bpf/tidegate.bpf.o and
 * bpf/task-print.bpf.o.
 *
 * scripts/build.ts writes .tmp/native/embedded-files.generated.ts, whose default export is the
 * `import … with { type: "file" }` paths of those five files, and compiles with
 * `--define TIDEGATE_EMBEDDED_FILES="<that module, relative to this file>"`: the bundler then sees
 * a literal dynamic import and embeds the files. Run from source (`bun run`, `bun test`, tsc),
 * the constant is undefined, nothing is imported, and EMBEDDED is null: callers use the system's
 * libraries and the repository's objects instead.
 */
declare const TIDEGATE_EMBEDDED_FILES: string | undefined;

export interface EmbeddedFiles {
  readonly libz: string;
  readonly libelf: string;
  readonly libbpf: string;
  readonly object: string;
  readonly taskPrintObject: string;
}

async function load(): Promise<EmbeddedFiles | null> {
  if (typeof TIDEGATE_EMBEDDED_FILES !== "string") return null;
  const mod = (await import(TIDEGATE_EMBEDDED_FILES)) as { default: EmbeddedFiles };
  return mod.default;
}

/** Paths (under Bun's /$bunfs/) of the embedded files, or null when running from source. */
export const EMBEDDED: EmbeddedFiles | null = await load();
