/** Shared by the agent's tests (never shipped): temporary places and a hand-moved clock. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { placesFor, type Places } from "../runtime/instance.ts";

export interface TempPlaces {
  readonly dir: string;
  readonly places: Places;
  cleanup(): void;
}

export function tempPlaces(): TempPlaces {
  const dir = mkdtempSync(join(tmpdir(), "tidegate-agent-test-"));
  const places = placesFor("test", { stateDir: join(dir, "state"), runDir: join(dir, "run"), auditDir: join(dir, "audit") });
  return { dir, places, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic [0, 1) values cycling through `values`. */
export function fixedRandom(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}
