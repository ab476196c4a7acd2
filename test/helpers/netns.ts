/**
 * Test hosts made of Linux network namespaces (root only), for end-to-end tests that run tidegate
 * on several "machines".
 *
 * Guarantees:
 * - `makeHosts(prefix, subnet, names)` first deletes what an earlier run with the same prefix left:
 *   every `/run/netns/<prefix>*` namespace, and every link in the root namespace whose name starts
 *   with `linkPrefix(prefix)`. A prefix must therefore not be the start of another run's prefix.
 * - It then makes namespace `<prefix>sw` holding bridge `br0`, and per name `<prefix><name>` with
 *   `lo` up and `eth0` (a veth whose peer `<linkPrefix><i>` is a port of `br0`) holding
 *   `<subnet>.<i+1>/24`. Veth pairs are created inside the switch namespace with their peer placed
 *   straight into the host's, so the root namespace never holds any of it: no link, no address, no
 *   route, and it cannot reach the subnet. /etc/hosts and anything outside these namespaces are
 *   never touched.
 * - A half-made set is removed before `makeHosts` throws; `remove()` deletes everything made and
 *   never throws (it warns). Deleting a namespace is final for its links only once no process
 *   lives in it any more: stop the processes started with `nsenterArgv` before `remove()`.
 * - `nsenterArgv` enters the network namespace only, so bpffs, cgroupfs, mounts and users stay the
 *   host's.
 */
import { existsSync, readdirSync } from "node:fs";
import { TidegateError } from "../../src/errors.ts";

export type NetnsErrorCode = "bad_input" | "not_root" | "command_failed";
export class NetnsError extends TidegateError<NetnsErrorCode> {}

export interface Host {
  readonly name: string;
  /** The namespace's name, under /run/netns. */
  readonly netns: string;
  /** Its IPv4 address on the bridge, without prefix length. */
  readonly address: string;
  /** `["nsenter", "--net=/run/netns/<netns>", ...argv]`. */
  nsenterArgv(argv: readonly string[]): string[];
  /** Runs `argv` inside and returns its stdout; throws (command_failed) with its stderr otherwise. */
  sh(argv: readonly string[]): Promise<string>;
  /**
   * Adds to table `inet tidegate_test` a rule resetting TCP to `port` that arrives on any interface
   * but `lo`. The host's own processes still reach the port on every one of its addresses (Linux
   * delivers those over `lo`); other hosts get a reset.
   */
  dropExceptLoopback(port: number): Promise<void>;
}

export interface Hosts {
  readonly prefix: string;
  readonly switchNetns: string;
  /** In the order of `names`. */
  readonly list: readonly Host[];
  /** The host called `name`; throws (bad_input) for a name not made. */
  host(name: string): Host;
  remove(): Promise<void>;
}

const NETNS_DIR = "/run/netns";
const NFT_TABLE = "tidegate_test";

/** The start of the names of the links a run makes: the prefix's letters and digits, 11 at most. */
export function linkPrefix(prefix: string): string {
  return prefix.replace(/[^a-z0-9]/g, "").slice(0, 11);
}

export async function makeHosts(prefix: string, subnet: string, names: readonly string[]): Promise<Hosts> {
  checkInput(prefix, subnet, names);
  if (process.getuid?.() !== 0) throw new NetnsError("not_root", "netns: network namespaces need root");
  await removeLeftovers(prefix);
  const made: string[] = [];
  const switchNetns = `${prefix}sw`;
  try {
    await addNetns(switchNetns, made);
    await run(["ip", "-n", switchNetns, "link", "add", "br0", "type", "bridge"]);
    await run(["ip", "-n", switchNetns, "link", "set", "br0", "up"]);
    const list: Host[] = [];
    for (const [i, name] of names.entries()) {
      const netns = `${prefix}${name}`;
      const address = `${subnet}.${i + 1}`;
      await addNetns(netns, made);
      await plugIn(switchNetns, netns, `${linkPrefix(prefix)}${i}`, address);
      list.push(hostIn(name, netns, address));
    }
    return {
      prefix,
      switchNetns,
      list,
      host: (name) => list.find((h) => h.name === name) ?? fail(`netns: no host ${JSON.stringify(name)} in ${prefix}*`),
      remove: () => removeAll(prefix, made),
    };
  } catch (e) {
    await removeAll(prefix, made);
    throw e;
  }
}

function checkInput(prefix: string, subnet: string, names: readonly string[]): void {
  if (!/^[a-z0-9][a-z0-9-]*-$/.test(prefix) || linkPrefix(prefix).length < 4) {
    fail(`netns: prefix ${JSON.stringify(prefix)} must be lowercase letters, digits and '-', end in '-' and hold at least 4 letters or digits`);
  }
  const octets = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(subnet);
  if (octets === null || octets.slice(1).some((o) => Number(o) > 255)) fail(`netns: subnet ${JSON.stringify(subnet)} is not three octets like "10.251.0"`);
  if (names.length === 0 || names.length > 253) fail(`netns: ${names.length} hosts asked, 1 to 253 fit in a /24`);
  for (const name of names) {
    if (!/^[a-z0-9][a-z0-9-]*$/.test(name) || name === "sw") fail(`netns: host name ${JSON.stringify(name)} must be lowercase letters, digits and '-', and not "sw"`);
    if (`${prefix}${name}`.length > 64) fail(`netns: namespace name ${prefix}${name} is longer than 64 characters`);
  }
  if (new Set(names).size !== names.length) fail(`netns: host names repeat: ${names.join(", ")}`);
}

async function addNetns(netns: string, made: string[]): Promise<void> {
  await run(["ip", "netns", "add", netns]);
  made.push(netns);
  await run(["ip", "-n", netns, "link", "set", "lo", "up"]);
}

/** A veth made inside the switch namespace, its `eth0` end created straight in `netns`. */
async function plugIn(switchNetns: string, netns: string, port: string, address: string): Promise<void> {
  await run(["ip", "-n", switchNetns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns]);
  await run(["ip", "-n", switchNetns, "link", "set", port, "master", "br0", "up"]);
  await run(["ip", "-n", netns, "addr", "add", `${address}/24`, "dev", "eth0"]);
  await run(["ip", "-n", netns, "link", "set", "eth0", "up"]);
}

function hostIn(name: string, netns: string, address: string): Host {
  const nsenterArgv = (argv: readonly string[]) => ["nsenter", `--net=${NETNS_DIR}/${netns}`, ...argv];
  return {
    name,
    netns,
    address,
    nsenterArgv,
    sh: (argv) => run(nsenterArgv(argv)),
    dropExceptLoopback: async (port) => {
      if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`netns: port ${port} is not 1 to 65535`);
      const rules = [
        `add table inet ${NFT_TABLE}`,
        `add chain inet ${NFT_TABLE} input { type filter hook input priority filter; policy accept; }`,
        `add rule inet ${NFT_TABLE} input iifname != "lo" tcp dport ${port} reject with tcp reset`,
      ];
      await run(nsenterArgv(["nft", rules.join("; ")]));
    },
  };
}

/** Deletes the namespaces `made`, then whatever else carries the prefix; warns, never throws. */
async function removeAll(prefix: string, made: readonly string[]): Promise<void> {
  for (const netns of made) {
    if (!existsSync(`${NETNS_DIR}/${netns}`)) continue;
    await run(["ip", "netns", "del", netns]).catch((e: unknown) => console.warn(`netns: removing ${netns}: ${String(e)}`));
  }
  await removeLeftovers(prefix).catch((e: unknown) => console.warn(`netns: removing leftovers of ${prefix}*: ${String(e)}`));
}

async function removeLeftovers(prefix: string): Promise<void> {
  for (const netns of leftoverNetns(prefix)) await run(["ip", "netns", "del", netns]);
  for (const link of await rootLinks()) {
    if (!link.startsWith(linkPrefix(prefix))) continue;
    // Deleting one end of a veth deletes its peer too, which may be next in the list.
    await run(["ip", "link", "del", link]).catch(async (e: unknown) => {
      if ((await rootLinks()).includes(link)) throw e;
    });
  }
}

function leftoverNetns(prefix: string): string[] {
  try {
    return readdirSync(NETNS_DIR).filter((n) => n.startsWith(prefix));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

/** Link names in the root namespace (`ip -o link` lines read `2: name@peer: <...`). */
export async function rootLinks(): Promise<string[]> {
  const out = await run(["ip", "-o", "link", "show"]);
  return out.split("\n").flatMap((line) => {
    const m = /^\d+:\s+([^:@\s]+)/.exec(line);
    return m ? [m[1]!] : [];
  });
}

async function run(argv: readonly string[]): Promise<string> {
  const proc = Bun.spawn([...argv], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new NetnsError("command_failed", `netns: '${argv.join(" ")}' exited ${code}: ${stderr.trim()}`);
  return stdout;
}

function fail(message: string): never {
  throw new NetnsError("bad_input", message);
}
