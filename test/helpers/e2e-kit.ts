/**
 * Small pieces every end-to-end stand needs (test/e2e/*-setup.ts, domain.ts): the agents' JSON log
 * lines, a tidegate command that must succeed, a bundle's roots as PEM, a process's output.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tidegate } from "./binary.ts";
import { startTidegate, waitFor, type Running } from "./processes.ts";
import { callUnix } from "../../src/runtime/unix-http.ts";
import { encodePem } from "../../src/x509/pem.ts";

export type LogLine = { event: string; [k: string]: unknown };

/** The JSON lines a tidegate process logged so far. */
export function parseLog(r: Running | undefined): LogLine[] {
  return (r?.output() ?? "")
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine);
}

/** `tidegate ARGS`' stdout; throws with its stderr when it exits non-zero. */
export async function cliOk(args: readonly string[]): Promise<string> {
  const r = await tidegate(args);
  if (r.code !== 0) throw new Error(`tidegate ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** The X.509 roots of a SPIFFE bundle (JWKS, `use: x509-svid`) as PEM. */
export function bundlePem(jwks: string): string {
  const keys = (JSON.parse(jwks) as { keys: { use?: string; x5c?: string[] }[] }).keys;
  const roots = keys.filter((k) => k.use === "x509-svid" && k.x5c?.[0] !== undefined).map((k) => encodePem("CERTIFICATE", Buffer.from(k.x5c![0]!, "base64")));
  if (roots.length === 0) throw new Error("e2e: the agent's bundle.json holds no x509-svid root");
  return roots.join("");
}

/** Everything `streams` write, interleaved as it comes, readable at any time. */
export function collectOutput(streams: readonly ReadableStream<Uint8Array>[]): () => string {
  let out = "";
  const decoder = new TextDecoder();
  for (const s of streams) {
    void (async () => {
      const reader = s.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        out += decoder.decode(value, { stream: true });
      }
    })();
  }
  return () => out;
}

/** What a stand made, undone last first by `run` (which never throws: a failed step is warned about). */
export function cleanupStack(label: string): { push(...fns: (() => Promise<unknown> | unknown)[]): void; run(): Promise<void> } {
  const steps: (() => Promise<unknown> | unknown)[] = [];
  return {
    push: (...fns) => void steps.push(...fns),
    run: async () => {
      while (steps.length > 0) {
        try {
          await steps.pop()!();
        } catch (e) {
          console.warn(`e2e ${label}: cleanup: ${String(e)}`);
        }
      }
    },
  };
}

/** A port free on `host` right now (the listener is closed again before it is used). */
export function freePort(host: string): number {
  const l = Bun.listen({ hostname: host, port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/**
 * Starts `tidegate agent FLAGS` joined to the server with a new join token for `node` (its file
 * `<dir>/<key>.token`), and waits until it captures (its status names an egress port) and
 * `ready()` holds (say, the SVID files the test needs are there). `server` is the public listener,
 * host:port. The caller stops it.
 */
export async function startJoinedAgent(o: { dir: string; serverFlags: readonly string[]; server: string; key: string; node: string; flags: readonly string[]; what: string; ready: () => boolean }): Promise<Running> {
  const tokenOut = await cliOk(["token", "create", "--node", o.node, ...o.serverFlags]);
  const tokenFile = join(o.dir, `${o.key}.token`);
  writeFileSync(tokenFile, /token:\s*(\S+)/.exec(tokenOut)![1]!, { mode: 0o600 });
  const fingerprint = /fingerprint[^:]*:\s*([0-9a-fA-F:]+)/.exec(tokenOut)![1]!;
  const agent = startTidegate(["agent", ...o.flags, "--sync-interval", "1s", "--server", `https://${o.server}`, "--join-token-file", tokenFile, "--server-fingerprint", fingerprint]);
  const sock = join(o.dir, `${o.key}-run`, "agent.sock");
  try {
    await waitFor(o.what, async () => {
      const s = (await callUnix(sock, "the agent", "GET", "/v1/status").catch(() => undefined))?.body as { capture?: { egress_port?: number } } | undefined;
      return s?.capture?.egress_port && o.ready() ? true : undefined;
    }, 30_000, 100, agent);
  } catch (e) {
    await agent.stop();
    throw e;
  }
  return agent;
}

/**
 * `tidegate server init` (trust domain example.org) and `tidegate server` with `serverFlags`
 * (their --run-dir is `<dir>/server-run`, their --server-config `<dir>/server.yaml`, written with
 * `serverYaml`: by default SVIDs for an hour), waiting for its server.json. The caller stops it.
 */
export async function startServer(dir: string, serverFlags: readonly string[], serverYaml = "svid:\n  default_ttl: 1h\n"): Promise<{ server: Running; public: string }> {
  writeFileSync(join(dir, "server.yaml"), serverYaml);
  await cliOk(["server", "init", "--trust-domain", "example.org", ...serverFlags]);
  const server = startTidegate(["server", ...serverFlags]);
  const serverJson = join(dir, "server-run", "server.json");
  try {
    const info = await waitFor("server.json", () => (existsSync(serverJson) ? (JSON.parse(readFileSync(serverJson, "utf8")) as { public: string }) : undefined), 15_000, 100, server);
    return { server, public: info.public };
  } catch (e) {
    await server.stop();
    throw e;
  }
}

/**
 * An agent's config file rewritten by `edit`; resolves once `log` shows `event` (default
 * policy_loaded) one more time. Returns what puts the original back, waiting for `back` the same
 * way. An edit that changes nothing is a mistake of the test: it throws.
 */
export async function rewriteConfig(file: string, log: () => LogLine[], edit: (yaml: string) => string, event = "policy_loaded", back = "policy_loaded"): Promise<() => Promise<void>> {
  const count = (e: string) => log().filter((l) => l.event === e).length;
  const original = readFileSync(file, "utf8");
  const write = async (text: string, e: string) => {
    const before = count(e);
    writeFileSync(file, text);
    await waitFor(`the agent to log ${e} after ${file} changed`, () => count(e) > before || undefined, 15_000);
  };
  const edited = edit(original);
  if (edited === original) throw new Error(`rewriteConfig: the edit left ${file} as it was`);
  await write(edited, event);
  return () => write(original, back);
}

/**
 * Deletes registration entry `entryId` (SPIFFE ID `spiffeId`, node `node`, selector `selector`)
 * on the server of `serverFlags`. Returns what creates it again, resolving with the new entry's
 * id once the agent whose state folder is `stateDir` holds its SVID.
 */
export async function deleteEntry(o: { serverFlags: readonly string[]; entryId: string; spiffeId: string; node: string; selector: string; stateDir: string }): Promise<() => Promise<string>> {
  await cliOk(["entry", "delete", o.entryId, ...o.serverFlags]);
  return async () => {
    const id = (JSON.parse(await cliOk(["entry", "create", "--spiffe-id", o.spiffeId, "--node", o.node, "--selector", o.selector, "--json", ...o.serverFlags])) as { id: string }).id;
    await waitFor(`the agent to hold the SVID of ${o.spiffeId} again`, () => existsSync(join(o.stateDir, "agent", "svids", `${id}.key`)) || undefined, 20_000);
    return id;
  };
}
