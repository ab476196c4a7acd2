/**
 * `tidegate attest --pid N`: the selectors of a process, and which of the local agent's entries
 * they select (docs/attestation.md). The attestation runs here, in this process, exactly as the
 * agent runs it; the entries come from the agent (agent.sock `GET /v1/status`). With no agent,
 * the selectors alone. Exit 0 attested; 1 attestation failed, or the entries tie (the agent would
 * refuse such a process).
 */
import { join } from "node:path";
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { str } from "./global-options.ts";
import { callUnix } from "../runtime/unix-http.ts";
import { createAttestation, matchEntry, nearMisses, type MatchEntry } from "../attest/index.ts";
import { INBOUND_SELECTOR } from "../up/entries.ts";
import { quote, TidegateError } from "../errors.ts";
import { httpsOriginFlag } from "./flag-values.ts";

interface Report {
  pid: number;
  start_time: number;
  selectors: readonly string[];
  /** null when the agent could not be asked (`agent_error` says why). */
  entries: number | null;
  agent_error: string | null;
  match: MatchEntry | null;
  error: { code: string; message: string } | null;
  near_misses: { entry_id: string; spiffe_id: string; missing: string }[];
}

async function agentEntries(socket: string): Promise<MatchEntry[] | string> {
  try {
    const res = await callUnix(socket, "the agent", "GET", "/v1/status");
    const entries = (res.body as { entries?: unknown } | null)?.entries;
    if (res.status !== 200 || !Array.isArray(entries)) return `the agent answered ${res.status}`;
    return entries as MatchEntry[];
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

function render(r: Report): string {
  const lines = [`pid ${r.pid} (start time ${r.start_time})`, `selectors (${r.selectors.length})`];
  for (const s of r.selectors) lines.push(`  ${s}`);
  if (r.entries === null) {
    lines.push(`no agent: selectors only (${r.agent_error})`);
    return lines.join("\n") + "\n";
  }
  if (r.error !== null) lines.push(`match          ERROR [${r.error.code}]: ${r.error.message}`);
  else if (r.match === null) lines.push(`match          none of the agent's ${r.entries} entries: no identity (default deny)`);
  else {
    const n = new Set(r.match.selectors).size;
    lines.push(`match          ${r.match.spiffe_id} (entry ${r.match.id}, ${n} selector${n === 1 ? "" : "s"})`);
  }
  if (r.near_misses.length > 0) {
    lines.push(`near misses (entries missing one selector)`);
    for (const m of r.near_misses) lines.push(`  ${m.spiffe_id} (entry ${m.entry_id}) needs ${m.missing}`);
  }
  return lines.join("\n") + "\n";
}

export const attestCommand: Command = {
  name: "attest",
  summary: "show a process's selectors and the agent entry they select",
  usage: ["attest --pid PID [--json] [--kubelet [--kubelet-url URL] [--kubelet-node NAME] [--kubelet-token-file F] [--kubelet-ca-file F]]"],
  help: [
    "Attests process PID as the agent does (unix, cgroup and tidegate selectors, bound to the",
    "process's start time) and, when the agent answers on <run-dir>/agent.sock, shows the entry",
    "those selectors select (the one with the most selectors among those whose selectors are all",
    "present), and the entries missing exactly one selector. Reading another user's executable",
    "needs root. Exit 0 attested, 1 when attestation fails or several entries tie.",
    "",
    "With --kubelet, a process in a Kubernetes pod also gets k8s:ns, k8s:sa, k8s:pod-label and the",
    "other k8s selectors from the kubelet's pod list (HTTPS, port 10250, the service account's",
    "token and CA; docs/attestation.md). When the kubelet cannot be asked, attestation fails.",
  ].join("\n"),
  options: {
    pid: { type: "string", value: "PID", help: "the process to attest" },
    json: { type: "boolean", help: "print the report as JSON" },
    kubelet: { type: "boolean", help: "also ask the kubelet for the pod's k8s selectors" },
    "kubelet-url": { type: "string", value: "URL", help: "the kubelet (default https://NODE:10250, or https://127.0.0.1:10250)" },
    "kubelet-node": { type: "string", value: "NAME", help: "this node's name" },
    "kubelet-token-file": { type: "string", value: "FILE", help: "service-account token (default: the pod's mounted one)" },
    "kubelet-ca-file": { type: "string", value: "FILE", help: "CA of the kubelet's certificate (default: the pod's mounted one)" },
  },
  run: async ({ values, positionals, places, io }) => {
    if (positionals.length > 0) throw new UsageError(`attest takes no arguments, got ${quote(positionals[0]!)}`);
    const pidText = values.pid;
    if (typeof pidText !== "string") throw new UsageError("attest needs --pid PID");
    if (!/^[1-9][0-9]{0,9}$/.test(pidText)) throw new UsageError(`--pid ${JSON.stringify(pidText.slice(0, 32))} is not a pid`);
    const flag = (k: string) => str(values[k]);
    const kubeletFlags = ["kubelet-url", "kubelet-node", "kubelet-token-file", "kubelet-ca-file"].filter((k) => flag(k) !== undefined);
    if (!values.kubelet && kubeletFlags.length > 0) throw new UsageError(`--${kubeletFlags[0]} needs --kubelet`);
    if (flag("kubelet-url") !== undefined) httpsOriginFlag(flag("kubelet-url")!, "--kubelet-url");
    const kubelet = values.kubelet
      ? {
          ...(flag("kubelet-url") ? { url: flag("kubelet-url")! } : {}),
          ...(flag("kubelet-node") ? { nodeName: flag("kubelet-node")! } : {}),
          ...(flag("kubelet-token-file") ? { tokenFile: flag("kubelet-token-file")! } : {}),
          ...(flag("kubelet-ca-file") ? { caFile: flag("kubelet-ca-file")! } : {}),
        }
      : undefined;
    const attested = await createAttestation({ cgroupName: places.cgroupName, ...(kubelet ? { kubelet } : {}) }).attest(Number(pidText));
    const found = await agentEntries(join(places.runDir, "agent.sock"));
    const r: Report = {
      pid: attested.pid,
      start_time: attested.startTime,
      selectors: attested.selectors,
      entries: typeof found === "string" ? null : found.length,
      agent_error: typeof found === "string" ? found : null,
      match: null,
      error: null,
      near_misses: [],
    };
    if (typeof found !== "string") {
      try {
        r.match = matchEntry(found, attested.selectors);
      } catch (e) {
        if (!(e instanceof TidegateError)) throw e;
        r.error = { code: e.code, message: e.message };
      }
      // An inbound listener's entry misses a selector no process carries: not a near miss.
      r.near_misses = nearMisses(found, attested.selectors)
        .filter((m) => !m.missing.startsWith(INBOUND_SELECTOR))
        .map((m) => ({ entry_id: m.entry.id, spiffe_id: m.entry.spiffe_id, missing: m.missing }));
    }
    io.out(values.json ? JSON.stringify(r, null, 2) + "\n" : render(r));
    return r.error === null ? 0 : 1;
  },
};
