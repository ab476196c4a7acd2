/**
 * The SPIFFE IDs the server gives itself and its nodes (docs/server-api.md):
 * `spiffe://TD/tidegate/server` and `spiffe://TD/tidegate/agent/NODE`, NODE one path segment.
 * Everything under `/tidegate/` is reserved for these: no registration entry may claim it, or a
 * node could obtain the server's identity, or another node's.
 */
import { SpiffeId, SpiffeIdError, type TrustDomain } from "../spiffe/index.ts";
import { ApiError } from "./errors.ts";

export const RESERVED_PREFIX = "/tidegate/";

export function serverId(td: TrustDomain): SpiffeId {
  return SpiffeId.fromSegments(td, "tidegate", "server");
}

/** The node SVID's ID; 400 bad_node_name when `node` is not one valid path segment. */
export function nodeId(td: TrustDomain, node: string): SpiffeId {
  try {
    return SpiffeId.fromSegments(td, "tidegate", "agent", node);
  } catch (e) {
    if (e instanceof SpiffeIdError) {
      throw new ApiError("bad_node_name", `server: node name ${JSON.stringify(node.slice(0, 100))} is not one SPIFFE ID path segment (${e.code})`, { cause: e });
    }
    throw e;
  }
}

/** The node name of a node ID of trust domain `td`, or null for any other ID. */
export function nodeOf(td: TrustDomain, id: SpiffeId): string | null {
  if (!id.memberOf(td)) return null;
  const m = /^\/tidegate\/agent\/([^/]+)$/.exec(id.path);
  return m === null ? null : m[1]!;
}
