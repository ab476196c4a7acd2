// The network-namespace hosts (root; CI runs it): hosts on the bridge reach each other, the root
// namespace neither holds nor reaches any of it, dropExceptLoopback resets other hosts but not the
// host's own 127.0.0.1, remove() leaves nothing, and a later run cleans what a crashed one left.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { readdirSync } from "node:fs";
import { makeHosts, linkPrefix, rootLinks, type Host, type Hosts } from "./netns.ts";
import { collectOutput } from "./e2e-kit.ts";
import { waitFor } from "./processes.ts";

const PREFIX = "tg-t-nsh-";
const SUBNET = "10.252.0";
const T = 30_000;
const isRoot = process.getuid?.() === 0;
if (!isRoot && !process.env.CI) console.log("netns helper: skipped (needs root)");

/** Two listeners on 0.0.0.0; each connection gets `hello from NAME on PORT` and is closed. */
const SERVER = `
const ports = [];
for (let i = 0; i < 2; i++) {
  const l = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { data() {}, open(s) {
    console.log("accepted " + l.port + " " + s.remoteAddress);
    s.end("hello from " + process.env.TG_HOST + " on " + l.port);
  } } });
  ports.push(l.port);
}
console.log("listening " + ports.join(" "));`;

/** Connects, prints {outcome, got} as JSON: closed (with what it got), refused, or timeout. */
const CLIENT = `
let got = "";
const say = (outcome, code) => { console.log(JSON.stringify({ outcome, got, code })); process.exit(0); };
setTimeout(() => say("timeout"), Number(process.env.TG_WAIT_MS));
Bun.connect({ hostname: process.env.TG_TO, port: Number(process.env.TG_PORT), socket: {
  data(s, d) { got += d.toString(); },
  close() { say("closed"); },
  error(s, e) { say("error", e.code); },
  connectError(s, e) { say("refused", e.code); },
} }).catch((e) => say("refused", e.code));`;

type Outcome = { outcome: "closed" | "refused" | "timeout" | "error"; got: string; code?: string; ms: number };

/** A connection to `to:port` from `from` (the root namespace when null). */
async function connect(from: Host | null, to: string, port: number, waitMs = 3000): Promise<Outcome> {
  const argv = [process.execPath, "-e", CLIENT];
  const started = performance.now();
  const proc = Bun.spawn(from ? from.nsenterArgv(argv) : argv, {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TG_TO: to, TG_PORT: String(port), TG_WAIT_MS: String(waitMs) },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (!out.startsWith("{")) throw new Error(`the client printed nothing it should: ${out}${err}`);
  return { ...(JSON.parse(out) as Omit<Outcome, "ms">), ms: performance.now() - started };
}

interface Server {
  readonly proc: Subprocess;
  readonly ports: [number, number];
  accepted(): string[];
}

async function startServer(host: Host): Promise<Server> {
  const proc = Bun.spawn(host.nsenterArgv([process.execPath, "-e", SERVER]), {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TG_HOST: host.name },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const output = collectOutput([proc.stdout, proc.stderr]);
  const ports = await waitFor(`the listeners in ${host.netns}`, () => /listening (\d+) (\d+)/.exec(output())?.slice(1).map(Number) as [number, number] | undefined, 10_000, 20);
  return { proc, ports, accepted: () => output().split("\n").filter((l) => l.startsWith("accepted ")) };
}

async function stop(server: Server | undefined): Promise<void> {
  server?.proc.kill("SIGKILL");
  await server?.proc.exited;
}

function ourNetns(): string[] {
  return readdirSync("/run/netns").filter((n) => n.startsWith(PREFIX));
}

describe.skipIf(!isRoot && !process.env.CI)("network-namespace hosts", () => {
  let hosts: Hosts | undefined;
  let server: Server | undefined;

  beforeAll(async () => {
    hosts = await makeHosts(PREFIX, SUBNET, ["a", "b"]);
    server = await startServer(hosts.host("a"));
  }, T);

  afterAll(async () => {
    await stop(server);
    await hosts?.remove();
  }, T);

  test("makes one namespace per host and the switch, addressed in order, with lo up", async () => {
    expect(ourNetns().sort()).toEqual([`${PREFIX}a`, `${PREFIX}b`, `${PREFIX}sw`]);
    expect(hosts!.list.map((h) => [h.name, h.netns, h.address])).toEqual([
      ["a", `${PREFIX}a`, `${SUBNET}.1`],
      ["b", `${PREFIX}b`, `${SUBNET}.2`],
    ]);
    const a = hosts!.host("a");
    expect(a.nsenterArgv(["true"])).toEqual(["nsenter", `--net=/run/netns/${PREFIX}a`, "true"]);
    const addrs = await a.sh(["ip", "-o", "-4", "addr", "show"]);
    expect(addrs).toMatch(/\blo\s+inet 127\.0\.0\.1\/8/);
    expect(addrs).toMatch(new RegExp(`\\beth0\\s+inet ${SUBNET.replaceAll(".", "\\.")}\\.1/24`));
    expect(() => hosts!.host("c")).toThrow(/no host "c"/);
  }, T);

  test("a host reaches another's listener on the bridge", async () => {
    const r = await connect(hosts!.host("b"), `${SUBNET}.1`, server!.ports[0]);
    expect(r).toMatchObject({ outcome: "closed", got: `hello from a on ${server!.ports[0]}` });
    expect(server!.accepted()).toContain(`accepted ${server!.ports[0]} ${SUBNET}.2`);
  }, T);

  // Only looked at, never dialled: from the root namespace the subnet is off-host (the default
  // route), and tests send nothing outside loopback and their own namespaces.
  test("the root namespace holds no address, route or link of the subnet", async () => {
    const rootAddrs = (await Bun.$`ip -o addr show`.text()).split("\n");
    expect(rootAddrs.filter((l) => l.includes(`${SUBNET}.`))).toEqual([]);
    const routes = (await Bun.$`ip -o route show`.text()).split("\n");
    expect(routes.filter((l) => l.startsWith(`${SUBNET}.`))).toEqual([]);
    expect((await rootLinks()).filter((l) => l.startsWith(linkPrefix(PREFIX)) || l === "br0")).toEqual([]);
  }, T);

  test("dropExceptLoopback resets other hosts at once, keeps 127.0.0.1 and the other ports", async () => {
    const [dropped, open] = server!.ports;
    const a = hosts!.host("a");
    await a.dropExceptLoopback(dropped);
    expect(await a.sh(["nft", "list", "table", "inet", "tidegate_test"])).toContain(`iifname != "lo" tcp dport ${dropped} reject with tcp reset`);
    const fromB = await connect(hosts!.host("b"), a.address, dropped);
    expect(fromB).toMatchObject({ outcome: "refused", code: "ECONNREFUSED" });
    expect(fromB.ms).toBeLessThan(2500);
    expect(await connect(a, "127.0.0.1", dropped)).toMatchObject({ outcome: "closed", got: `hello from a on ${dropped}` });
    expect(await connect(hosts!.host("b"), a.address, open)).toMatchObject({ outcome: "closed", got: `hello from a on ${open}` });
  }, T);

  test("remove() leaves no namespace nor link behind, and may be called twice", async () => {
    await stop(server);
    server = undefined;
    await hosts!.remove();
    await hosts!.remove();
    expect(ourNetns()).toEqual([]);
    expect((await rootLinks()).filter((l) => l.startsWith(linkPrefix(PREFIX)))).toEqual([]);
  }, T);

  test("makeHosts after a crashed run (no remove) deletes what it left, then makes fresh hosts", async () => {
    const crashed = await makeHosts(PREFIX, SUBNET, ["a", "b", "stale"]);
    await crashed.host("a").dropExceptLoopback(9);
    const stray = `${linkPrefix(PREFIX)}x`;
    await Bun.$`ip link add ${stray} type veth peer name ${stray}y`.quiet();
    hosts = await makeHosts(PREFIX, SUBNET, ["a", "b"]);
    expect(ourNetns().sort()).toEqual([`${PREFIX}a`, `${PREFIX}b`, `${PREFIX}sw`]);
    expect((await rootLinks()).filter((l) => l.startsWith(linkPrefix(PREFIX)))).toEqual([]);
    expect(await hosts.host("a").sh(["nft", "list", "ruleset"])).toBe("");
    const s = await startServer(hosts.host("a"));
    try {
      expect(await connect(hosts.host("b"), `${SUBNET}.1`, s.ports[0])).toMatchObject({ outcome: "closed" });
    } finally {
      await stop(s);
    }
  }, T);
});

describe("makeHosts input", () => {
  test.each([
    ["", SUBNET, ["a"], /prefix ""/],
    ["tg-", SUBNET, ["a"], /at least 4 letters/],
    ["TG-hosts-", SUBNET, ["a"], /prefix "TG-hosts-"/],
    ["tg-hosts", SUBNET, ["a"], /end in '-'/],
    [PREFIX, "10.252", ["a"], /subnet "10.252"/],
    [PREFIX, "10.256.0", ["a"], /subnet "10.256.0"/],
    [PREFIX, SUBNET, [], /0 hosts/],
    [PREFIX, SUBNET, ["sw"], /host name "sw"/],
    [PREFIX, SUBNET, ["a b"], /host name "a b"/],
    [PREFIX, SUBNET, ["a", "a"], /repeat/],
  ] as const)("prefix %p, subnet %p, names %p are refused before anything is made", async (prefix, subnet, names, message) => {
    const e = await makeHosts(prefix, subnet, names).catch((e: unknown) => e);
    expect(e).toMatchObject({ code: "bad_input" });
    expect(String(e)).toMatch(message);
  });
});
