/**
 * `tidegate svid inspect` and `tidegate svid verify`: look at an X.509-SVID and check it against a
 * trust bundle with tidegate's own verifier (the one the proxy and the server use).
 */
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { namingFile, readInputFile } from "./files.ts";
import { readChainFile, type ChainFile } from "../x509/chain-file.ts";
import { looksLikePem } from "../x509/pem.ts";
import { describeCertificate, readCertificate, type CertificateDescription } from "../x509/cert.ts";
import { verifyX509Svid } from "../x509/verify.ts";
import { loadBundleFile } from "./bundle-file.ts";
import { trustDomainFlag } from "./flag-values.ts";

function when(d: Date, now: Date): string {
  const s = Math.round((d.getTime() - now.getTime()) / 1000);
  const abs = Math.abs(s);
  const span = abs < 120 ? `${abs}s` : abs < 7200 ? `${Math.round(abs / 60)}m` : abs < 172800 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86400)}d`;
  return s >= 0 ? `in ${span}` : `${span} ago`;
}

function renderCert(d: CertificateDescription, index: number, now: Date): string {
  const role = index === 0 ? (d.isCa ? "CA certificate" : "leaf") : d.isCa ? "CA" : "not a CA";
  const rows: [string, string][] = [
    ["SPIFFE ID", d.spiffeId ?? "(none: no valid SPIFFE URI SAN)"],
    ["trust domain", d.trustDomain ?? "-"],
    ["role", role],
    ["not before", `${d.notBefore.toISOString()} (${when(d.notBefore, now)})`],
    ["not after", `${d.notAfter.toISOString()} (${d.notAfter < now ? "expired " : "expires "}${when(d.notAfter, now)})`],
    ["key", d.keyType],
    ["subject", d.subject || "(empty)"],
    ["issuer", d.issuer || "(empty)"],
    ["serial", d.serial],
    ["sha256", d.sha256],
  ];
  if (d.uriSans.length !== 1 || d.spiffeId === null) rows.push(["URI SANs", d.uriSans.join(", ") || "(none)"]);
  if (d.dnsSans.length) rows.push(["DNS SANs", d.dnsSans.join(", ")]);
  return `[${index}]\n` + rows.map(([k, v]) => `  ${k.padEnd(13)} ${v}`).join("\n") + "\n";
}

function fileArg(positionals: readonly string[], verb: string): string {
  if (positionals.length !== 1) {
    throw new UsageError(positionals.length === 0 ? `${verb} needs a FILE` : `${verb} takes one FILE, got ${positionals.length}`);
  }
  return positionals[0]!;
}

/**
 * The chain in `path`, every certificate parsed: an error names the file, and says when the file
 * was read as DER because it holds no PEM.
 */
async function readChain(path: string, what: string): Promise<ChainFile> {
  const bytes = readInputFile(path, what);
  const hint = looksLikePem(bytes) ? "" : " (no PEM -----BEGIN line, so it was read as one DER certificate)";
  return namingFile("", path, () => {
    const chain = readChainFile(bytes);
    for (const der of chain.certificates) readCertificate(der);
    return chain;
  }, hint);
}

function parseAt(v: unknown): Date {
  if (typeof v !== "string") return new Date();
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--at ${JSON.stringify(v)} is not a date (use ISO 8601, e.g. 2026-11-26T10:00:00Z)`);
  return d;
}

const inspect: Command = {
  name: "inspect",
  summary: "show an X.509-SVID or certificate chain: SPIFFE ID, validity, key, issuer",
  usage: ["svid inspect [--json] FILE"],
  help: [
    "FILE holds PEM (one or more CERTIFICATE blocks, leaf first) or one DER certificate. Other PEM",
    "blocks, such as a private key kept beside the chain, are skipped and never printed.",
    "inspect shows what the certificates say; it does not verify them (see 'svid verify').",
  ].join("\n"),
  options: { json: { type: "boolean", help: "print a JSON array, one object per certificate" } },
  run: async ({ values, positionals, io }) => {
    const path = fileArg(positionals, "svid inspect");
    const chain = await readChain(path, "svid inspect");
    const descriptions = await Promise.all(chain.certificates.map((der) => describeCertificate(der)));
    if (values.json) {
      io.out(JSON.stringify(descriptions, null, 2) + "\n");
      return 0;
    }
    const now = new Date();
    io.out(descriptions.map((d, i) => renderCert(d, i, now)).join(""));
    if (chain.skipped.length) io.out(`(skipped ${chain.skipped.length} non-certificate block(s): ${chain.skipped.join(", ")})\n`);
    return 0;
  },
};

const verify: Command = {
  name: "verify",
  summary: "verify an X.509-SVID against a trust bundle and print its SPIFFE ID",
  usage: ["svid verify --bundle BUNDLE [--trust-domain TD] [--at TIME] FILE"],
  help: [
    "FILE holds the leaf first, then any intermediates (PEM, or one DER certificate). BUNDLE is a",
    "PEM file of root certificates or a SPIFFE bundle (JWKS); it is the bundle of trust domain TD,",
    "which defaults to the trust domain named in the URI SAN of the bundle's roots.",
    "",
    "Exit 0 printing the SPIFFE ID when the chain verifies per the SPIFFE X509-SVID standard;",
    "exit 1 printing the reason's code and message when it does not; exit 2 on a usage error.",
  ].join("\n"),
  options: {
    bundle: { type: "string", value: "BUNDLE", help: "trust bundle: PEM roots or SPIFFE JWKS (required)" },
    "trust-domain": { type: "string", value: "TD", help: "the trust domain the bundle is for" },
    at: { type: "string", value: "TIME", help: "verify as of TIME (ISO 8601) instead of now" },
  },
  run: async ({ values, positionals, io }) => {
    const path = fileArg(positionals, "svid verify");
    if (typeof values.bundle !== "string") throw new UsageError("svid verify needs --bundle BUNDLE");
    const now = parseAt(values.at);
    const td = typeof values["trust-domain"] === "string" ? trustDomainFlag(values["trust-domain"]).name : undefined;
    const bundlePath = values.bundle;
    const source = await namingFile("--bundle", bundlePath, () => loadBundleFile(readInputFile(bundlePath, "svid verify --bundle"), td));
    const chain = await readChain(path, "svid verify");
    const result = await verifyX509Svid(chain.certificates, source, { now });
    io.out(`${result.id.toString()}\n`);
    return 0;
  },
};

export const svidCommand: Command = {
  name: "svid",
  summary: "inspect and verify X.509-SVIDs",
  usage: ["svid inspect [--json] FILE", "svid verify --bundle BUNDLE [--trust-domain TD] [--at TIME] FILE"],
  subcommands: [inspect, verify],
};
