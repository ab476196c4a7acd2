/**
 * `tidegate demo` (src/demo/demo.ts) and the two programs it starts as workloads, hidden from
 * help: `demo mcp-server` (the forecast MCP server) and `demo mcp-host` (the demo's AI agent).
 */
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { str } from "./global-options.ts";
import { runDemo } from "../demo/demo.ts";
import { runMcpServer } from "../demo/mcp-server.ts";
import { runMcpHost, type McpHostOptions } from "../demo/mcp-host.ts";
import { selfBinary } from "../run/launcher.ts";

const mcpServer: Command = {
  name: "mcp-server",
  summary: "the demo's forecast MCP server (stdio)",
  usage: ["demo mcp-server --api-name NAME --api-address IP --api-port PORT"],
  hidden: true,
  options: {
    "api-name": { type: "string", value: "NAME", help: "the API's host name" },
    "api-address": { type: "string", value: "IP", help: "the address to dial" },
    "api-port": { type: "string", value: "PORT", help: "the port to dial" },
  },
  run: async ({ values }) => {
    const apiName = str(values["api-name"]);
    const apiAddress = str(values["api-address"]);
    const apiPort = Number(str(values["api-port"]));
    if (apiName === undefined || apiAddress === undefined || !Number.isInteger(apiPort) || apiPort < 1 || apiPort > 65535) {
      throw new UsageError("demo mcp-server needs --api-name, --api-address and --api-port");
    }
    return runMcpServer({ apiName, apiAddress, apiPort });
  },
};

const mcpHost: Command = {
  name: "mcp-host",
  summary: "the demo's AI agent: an MCP host of the forecast server",
  usage: ["demo mcp-host JSON"],
  hidden: true,
  run: async ({ positionals }) => {
    let o: McpHostOptions;
    try {
      o = JSON.parse(positionals[0] ?? "") as McpHostOptions;
    } catch {
      throw new UsageError("demo mcp-host takes one JSON argument");
    }
    if (!Array.isArray(o.command) || typeof o.city !== "string" || typeof o.unlistedUrl !== "string") throw new UsageError("demo mcp-host: the JSON needs command, city and unlistedUrl");
    return runMcpHost(o);
  },
};

export const demoCommand: Command = {
  name: "demo",
  summary: "run the local scenario end to end: secretless injection, a denied host, a denied tool, the audit trail",
  usage: ["demo [--keep] [--instance NAME]"],
  help: [
    "Shows, on this host and with nothing but this binary, what tidegate is for (DESIGN.md section 1,",
    "the local scenario). As root, under its own instance (default 'demo': its own cgroup, pins and",
    "ports) with every file in a fresh folder under $TMPDIR:",
    "  - creates a trust domain, its CA and an agent joined to it (single-host mode, as 'tidegate up');",
    "  - starts a stand-in third-party HTTPS API that wants a bearer token, kept only in tidegate's",
    "    secret store, and a host that no rule names;",
    "  - the demo's AI agent (workload demo-agent, user nobody) starts a small MCP server built into",
    "    this binary (workload forecast-mcp, user daemon) through 'tidegate run --mcp-stdio';",
    "  - get_forecast: the server sends plain HTTP with no credential; tidegate adds the token on the",
    "    wire and speaks TLS to the API (the server's environment is checked: no token);",
    "  - fetch_url toward the unlisted host: denied;",
    "  - delete_all_forecasts: hidden from the tool list and refused by the MCP rule;",
    "then prints the audit trail, verifies it ('tidegate audit verify') and removes everything it",
    "made (--keep keeps the folder). Every claim is checked: exit 0 when all hold, 1 otherwise.",
    "Needs cgroup v2, the users nobody and daemon and the group nogroup, and this binary where those",
    "users can run it (install.sh puts it in /usr/local/bin). The instance is --instance only (not",
    "TIDEGATE_INSTANCE); one in use (an agent or 'tidegate up' of it answers, or it has pins or a",
    "cgroup the demo did not leave) is refused, never torn down. Ctrl-C cleans up as a normal end.",
    "",
    "Example: tidegate demo --instance docs-demo",
  ].join("\n"),
  options: { keep: { type: "boolean", help: "keep the demo's folder (config, state, audit log) afterwards" } },
  subcommands: [mcpServer, mcpHost],
  run: async ({ values, positionals, places, io }) => {
    if (positionals.length > 0) throw new UsageError(`unknown command ${JSON.stringify(positionals[0])} for tidegate demo`);
    // Only an explicit --instance: TIDEGATE_INSTANCE may name the instance this shell works with.
    void places;
    return runDemo({ instance: str(values.instance) ?? "demo", keep: values.keep === true, self: selfBinary(), io });
  },
};
