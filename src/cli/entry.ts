/**
 * `tidegate entry create|list|show|delete`: registration entries on the running server, over
 * server.sock (docs/server-api.md, "Server admin API"). The server validates; its error codes
 * (bad_spiffe_id, bad_parent_id, wrong_trust_domain, bad_selector, entry_exists...) are printed.
 * A selector no attestor gives (src/attest/selector.ts) is a usage error here already, before
 * the server is asked, with the nearest known type or key.
 */
import type { Command, Context } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { callServer } from "./server.ts";
import { formatDuration, parseSeconds } from "../runtime/duration.ts";
import type { EntryJson } from "../server/wire.ts";
import { selectorProblem } from "../attest/selector.ts";
import { shortTtlNote } from "../server/config.ts";

function list(v: unknown): string[] {
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

function oneId(ctx: Context, verb: string): string {
  if (ctx.positionals.length !== 1) throw new UsageError(ctx.positionals.length === 0 ? `${verb} needs an entry ID` : `${verb} takes one entry ID, got ${ctx.positionals.length}`);
  return ctx.positionals[0]!;
}

function render(e: EntryJson): string {
  const rows: [string, string][] = [
    ["id", e.id],
    ["spiffe id", e.spiffe_id],
    ["parent", e.parent_id],
    ["selectors", e.selectors.join(", ")],
    ["ttl", formatDuration(e.ttl_seconds * 1000)],
  ];
  if (e.dns_names.length) rows.push(["dns names", e.dns_names.join(", ")]);
  return rows.map(([k, v]) => `${k.padEnd(10)} ${v}`).join("\n") + "\n";
}

async function trustDomain(ctx: Context): Promise<string> {
  return ((await callServer(ctx.places, "GET", "/v1/status")) as { trust_domain: string }).trust_domain;
}

const create: Command = {
  name: "create",
  summary: "register a workload identity for a node",
  usage: ["entry create --spiffe-id ID (--node NAME | --parent ID) --selector S [--selector S...] [--ttl D] [--dns NAME...]"],
  help: [
    "The node NAME (or the parent ID spiffe://TD/tidegate/agent/NAME) may then obtain X.509-SVIDs",
    "for ID for the processes that carry every selector S (SPIRE's type:key:value syntax, e.g.",
    "unix:uid:1000 or tidegate:workload:github-mcp; only selectors an attestor gives, listed in",
    "docs/attestation.md, are taken). ID must be in the server's trust domain and",
    "not under /tidegate/ (reserved). --ttl sets the SVIDs' lifetime (default: the server's",
    "svid.default_ttl; one under 20s is taken with a warning: SVIDs are backdated 10s and renewed at",
    "half their whole lifetime, so these turn over within seconds); --dns adds DNS SANs. Prints the",
    "new entry (its ID is what show and delete take).",
    "",
    "Example: tidegate entry create --spiffe-id spiffe://example.org/agent/demo --node node1 --selector tidegate:workload:demo",
  ].join("\n"),
  options: {
    "spiffe-id": { type: "string", value: "ID", help: "the workload's SPIFFE ID (required)" },
    node: { type: "string", value: "NAME", help: "the node that may obtain it" },
    parent: { type: "string", value: "ID", help: "the same as a node SPIFFE ID" },
    selector: { type: "string", multiple: true, value: "S", help: "a selector type:key:value (at least one)" },
    ttl: { type: "string", value: "D", help: "SVID lifetime, e.g. 1h" },
    dns: { type: "string", multiple: true, value: "NAME", help: "a DNS SAN" },
    json: { type: "boolean", help: "print the entry as JSON" },
  },
  run: async (ctx) => {
    if (ctx.positionals.length > 0) throw new UsageError(`entry create takes no arguments, got ${JSON.stringify(ctx.positionals[0])}`);
    const v = ctx.values;
    if (typeof v["spiffe-id"] !== "string") throw new UsageError("entry create needs --spiffe-id ID");
    if ((typeof v.node === "string") === (typeof v.parent === "string")) throw new UsageError("entry create needs exactly one of --node NAME and --parent ID");
    const selectors = list(v.selector);
    if (selectors.length === 0) throw new UsageError("entry create needs at least one --selector S");
    for (const s of selectors) {
      const why = selectorProblem(s);
      if (why !== null) throw new UsageError(`--selector: ${why}`);
    }
    let ttl: number | undefined;
    if (typeof v.ttl === "string") {
      try {
        ttl = parseSeconds(v.ttl, "--ttl");
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const parent = typeof v.parent === "string" ? v.parent : `spiffe://${await trustDomain(ctx)}/tidegate/agent/${v.node}`;
    const body = { spiffe_id: v["spiffe-id"], parent_id: parent, selectors, ...(ttl !== undefined ? { ttl_seconds: ttl } : {}), ...(v.dns ? { dns_names: list(v.dns) } : {}) };
    const entry = (await callServer(ctx.places, "POST", "/v1/entries", body)) as EntryJson;
    ctx.io.out(v.json ? JSON.stringify(entry, null, 2) + "\n" : render(entry));
    const short = ttl === undefined ? null : shortTtlNote("--ttl", ttl);
    if (short !== null) ctx.io.err(`tidegate entry create: warning: ${short}\n`);
    return 0;
  },
};

const listCmd: Command = {
  name: "list",
  summary: "list registration entries, all or one node's",
  usage: ["entry list [--node NAME] [--json]"],
  help: "One line per entry: ID, SPIFFE ID, parent, TTL, selectors. Ordered by SPIFFE ID.",
  options: {
    node: { type: "string", value: "NAME", help: "only the entries of node NAME" },
    json: { type: "boolean", help: "print a JSON array of entries" },
  },
  run: async (ctx) => {
    if (ctx.positionals.length > 0) throw new UsageError(`entry list takes no arguments, got ${JSON.stringify(ctx.positionals[0])}`);
    let url = "/v1/entries";
    if (typeof ctx.values.node === "string") url += `?parent_id=${encodeURIComponent(`spiffe://${await trustDomain(ctx)}/tidegate/agent/${ctx.values.node}`)}`;
    const res = (await callServer(ctx.places, "GET", url)) as { entries: EntryJson[] };
    if (ctx.values.json) {
      ctx.io.out(JSON.stringify(res.entries, null, 2) + "\n");
      return 0;
    }
    if (res.entries.length === 0) {
      ctx.io.out("no entries\n");
      return 0;
    }
    const rows = res.entries.map((e) => [e.id, e.spiffe_id, e.parent_id, formatDuration(e.ttl_seconds * 1000), e.selectors.join(",")]);
    const head = ["ID", "SPIFFE ID", "PARENT", "TTL", "SELECTORS"];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
    ctx.io.out([line(head), ...rows.map(line)].join("\n") + "\n");
    return 0;
  },
};

const show: Command = {
  name: "show",
  summary: "show one registration entry",
  usage: ["entry show ID [--json]"],
  options: { json: { type: "boolean", help: "print the entry as JSON" } },
  run: async (ctx) => {
    const id = oneId(ctx, "entry show");
    const entry = (await callServer(ctx.places, "GET", `/v1/entries/${encodeURIComponent(id)}`)) as EntryJson;
    ctx.io.out(ctx.values.json ? JSON.stringify(entry, null, 2) + "\n" : render(entry));
    return 0;
  },
};

const del: Command = {
  name: "delete",
  summary: "delete a registration entry",
  usage: ["entry delete ID"],
  help: "The node stops getting new SVIDs for it; SVIDs already issued stay valid until they expire.",
  run: async (ctx) => {
    const id = oneId(ctx, "entry delete");
    await callServer(ctx.places, "DELETE", `/v1/entries/${encodeURIComponent(id)}`);
    ctx.io.out(`deleted ${id}\n`);
    return 0;
  },
};

export const entryCommand: Command = {
  name: "entry",
  summary: "manage registration entries on the server (over server.sock)",
  usage: ["entry create --spiffe-id ID (--node NAME | --parent ID) --selector S...", "entry list [--node NAME]", "entry show ID", "entry delete ID"],
  subcommands: [create, listCmd, show, del],
};
