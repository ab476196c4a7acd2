/**
 * The workloads' trust bundle, `<run-dir>/intercept-ca-bundle.pem` (0644): the system roots
 * (SYSTEM_ROOTS, when present) followed by the interception CA, so a workload trusts both the Web
 * PKI and the leaves the proxy presents. `tidegate run` points SSL_CERT_FILE, NODE_EXTRA_CA_CERTS,
 * REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE at it (../run/ca-environment.ts).
 *
 * `refresh(caPem)` writes the file whole (writeAtomic) when the CA, the system roots file (its
 * inode, size or mtime) or the bundle file itself changed or vanished since the last write, and
 * otherwise only stats two files. A system roots file that exists but cannot be read throws
 * `intercept_bundle_io`, as does a failed write: a bundle without the roots would break every
 * other TLS connection of the workloads.
 */
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { InterceptError } from "./errors.ts";
import { writeAtomic } from "../runtime/atomic-write.ts";

export const SYSTEM_ROOTS = "/etc/ssl/certs/ca-certificates.crt";
export const BUNDLE_FILE = "intercept-ca-bundle.pem";

/** `<run-dir>/intercept-ca-bundle.pem`. */
export function bundlePathIn(runDir: string): string {
  return join(runDir, BUNDLE_FILE);
}

function stamp(path: string): string {
  try {
    const s = statSync(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return "absent";
  }
}

export class WorkloadTrustBundle {
  private last: { ca: string; roots: string; bundle: string } | null = null;

  /** `systemRoots`: a PEM file of roots, null for none (default SYSTEM_ROOTS). */
  constructor(
    readonly path: string,
    private readonly systemRoots: string | null = SYSTEM_ROOTS,
  ) {}

  /** The bundle's path, after writing it if anything changed (see the module comment). */
  refresh(caPem: string): string {
    const roots = this.systemRoots === null ? "absent" : stamp(this.systemRoots);
    const l = this.last;
    if (l !== null && l.ca === caPem && l.roots === roots && l.bundle === stamp(this.path)) return this.path;
    const text = `${this.readRoots()}${caPem.endsWith("\n") ? caPem : `${caPem}\n`}`;
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      writeAtomic(this.path, text, 0o644);
    } catch (e) {
      throw new InterceptError("intercept_bundle_io", `intercept: cannot write the workload trust bundle ${JSON.stringify(this.path)}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    this.last = { ca: caPem, roots, bundle: stamp(this.path) };
    return this.path;
  }

  /** The roots' text ending in a newline; "" when there is no roots file. */
  private readRoots(): string {
    if (this.systemRoots === null) return "";
    let text: string;
    try {
      text = readFileSync(this.systemRoots, "utf8");
    } catch (e) {
      if ((e as { code?: string }).code === "ENOENT") return "";
      throw new InterceptError("intercept_bundle_io", `intercept: cannot read the system roots ${JSON.stringify(this.systemRoots)}: ${(e as { code?: string }).code ?? String(e)}`, { cause: e });
    }
    return text === "" || text.endsWith("\n") ? text : `${text}\n`;
  }
}
