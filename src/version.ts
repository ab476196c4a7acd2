/** Set at build time by scripts/build.ts (`--define`); a source run reports "dev". */
declare const TIDEGATE_BUILD_COMMIT: string | undefined;

export const VERSION = "0.1.0";
export const COMMIT: string = typeof TIDEGATE_BUILD_COMMIT === "string" ? TIDEGATE_BUILD_COMMIT : "dev";
