/**
 * Builds dist/tidegate: one self-contained executable. The binary reads no .env, bunfig.toml or
 * tsconfig.json from the directory it is run in (a workload's working directory must not be able to
 * change how tidegate behaves). The commit is baked in for `tidegate version`.
 */
import { mkdirSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;

function commit(): string {
  const r = Bun.spawnSync(["git", "rev-parse", "--short=12", "HEAD"], { cwd: root, stdout: "pipe", stderr: "ignore" });
  const sha = r.exitCode === 0 ? r.stdout.toString().trim() : "";
  if (sha === "") return "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--untracked-files=no"], { cwd: root, stdout: "pipe" });
  return dirty.stdout.toString().trim() === "" ? sha : `${sha}-dirty`;
}

mkdirSync(`${root}/dist`, { recursive: true });
const args = [
  process.execPath, "build", "--compile",
  "--no-compile-autoload-dotenv", "--no-compile-autoload-bunfig", "--no-compile-autoload-tsconfig",
  "--define", `TIDEGATE_BUILD_COMMIT=${JSON.stringify(commit())}`,
  "src/cli/main.ts", "--outfile", "dist/tidegate",
];
console.error(`build: compiling dist/tidegate (bun ${Bun.version})`);
const r = Bun.spawnSync(args, { cwd: root, stdout: "inherit", stderr: "inherit" });
if (r.exitCode !== 0) {
  console.error(`build: bun build failed with exit code ${r.exitCode}`);
  process.exit(1);
}
console.error("build: wrote dist/tidegate");
