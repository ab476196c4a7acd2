/**
 * `tidegate token create`: a one-time join token for a node, from the running server (over
 * server.sock). This is the only output that ever shows a token; the server keeps only its
 * SHA-256. The root fingerprint printed with it is what the agent checks before sending the token.
 */
import type { Command } from "./command.ts";
import { UsageError } from "./usage-error.ts";
import { callServer } from "./server.ts";
import { formatDuration, parseSeconds } from "../runtime/duration.ts";

const create: Command = {
  name: "create",
  summary: "create a one-time join token for node NAME",
  usage: ["token create --node NAME [--ttl D] [--json]"],
  help: [
    "Prints the token, the SHA-256 fingerprint of the server's root CA and the agent command line",
    "that uses both. The token works once, for node NAME only, until it expires (--ttl, default",
    "the server's join_token.default_ttl). Pass it to the agent out of band; anyone holding it",
    "can join as NAME until it is used.",
    "",
    "Example: tidegate token create --node node1 --ttl 10m",
  ].join("\n"),
  options: {
    node: { type: "string", value: "NAME", help: "the node the token is for (required)" },
    ttl: { type: "string", value: "D", help: "lifetime, e.g. 10m" },
    json: { type: "boolean", help: "print the answer as JSON" },
  },
  run: async (ctx) => {
    if (ctx.positionals.length > 0) throw new UsageError(`token create takes no arguments, got ${JSON.stringify(ctx.positionals[0])}`);
    if (typeof ctx.values.node !== "string") throw new UsageError("token create needs --node NAME");
    let ttl: number | undefined;
    if (typeof ctx.values.ttl === "string") {
      try {
        ttl = parseSeconds(ctx.values.ttl, "--ttl");
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    }
    const res = (await callServer(ctx.places, "POST", "/v1/tokens", { node: ctx.values.node, ...(ttl !== undefined ? { ttl_seconds: ttl } : {}) })) as {
      token: string;
      node: string;
      expires_at: string;
      server_fingerprint: string;
    };
    if (ctx.values.json) {
      ctx.io.out(JSON.stringify(res, null, 2) + "\n");
      return 0;
    }
    const status = (await callServer(ctx.places, "GET", "/v1/status")) as { public: string };
    const left = formatDuration(Math.max(0, Math.round((Date.parse(res.expires_at) - Date.now()) / 1000)) * 1000);
    ctx.io.out(
      [
        `token: ${res.token}`,
        `server fingerprint (sha256): ${res.server_fingerprint}`,
        `node: ${res.node}, valid once, until ${res.expires_at} (${left})`,
        "",
        "on the node, as root: put the token in a file only root can read (printf is the shell's own, so",
        "the token is on no process's command line, which every user can see), then start the agent:",
        `  (umask 077 && printf '%s\\n' '${res.token}' > /root/tidegate-join-token)`,
        `  tidegate agent --server https://${status.public} --join-token-file /root/tidegate-join-token --server-fingerprint ${res.server_fingerprint}`,
        "",
      ].join("\n"),
    );
    return 0;
  },
};

export const tokenCommand: Command = {
  name: "token",
  summary: "create join tokens for nodes (over server.sock)",
  usage: ["token create --node NAME [--ttl D]"],
  subcommands: [create],
};
