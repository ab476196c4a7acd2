/**
 * `explain`: the decision with its reasons, for `tidegate policy explain` and for people reading
 * a deny in the audit log. It walks every rule in order with per-field checks (rule-match.ts)
 * rather than the engine's indexes, so a property test can hold the two against each other.
 *
 * For a deny it also lists near misses: rules that would not deny, whose caller and destination
 * matched but that failed on exactly one other field (port, protocol, method or path), naming that field; and,
 * when the connection named no host, the host rules that would otherwise have matched.
 */
import type { EgressRule, Policy } from "./model.ts";
import { decideWith, NO_RULE, type Decision, type Query } from "./query.ts";
import { failedFields, type Field } from "./rule-match.ts";

export interface NearMiss {
  readonly rule: EgressRule;
  readonly field: Field;
  readonly why: string;
}

export interface RuleStep {
  readonly rule: EgressRule;
  /** Fields this rule failed; empty for the rule that decided. */
  readonly failed: readonly Field[];
}

export interface Explanation {
  readonly decision: Decision;
  /** The rules tried before the decision, with what each failed (callers' rules only). */
  readonly steps: readonly RuleStep[];
  readonly nearMisses: readonly NearMiss[];
}

const CONNECTION_FIELDS: readonly Field[] = ["from", "to.host", "to.cidr", "to.port", "to.proto"];

function walk(policy: Policy, q: Query): { decision: Decision; steps: RuleStep[] } {
  const steps: RuleStep[] = [];
  let intercepted = false;
  for (const r of policy.egress) {
    const failed = failedFields(r, q);
    if (failed.includes("from")) continue;
    const connectionFailed = failed.some((f) => CONNECTION_FIELDS.includes(f));
    if (!connectionFailed && r.http !== null) {
      if (q.http == null) {
        steps.push({ rule: r, failed: [] });
        return { decision: { verdict: "inspect", rule: r }, steps };
      }
      intercepted = true;
    }
    steps.push({ rule: r, failed });
    if (failed.length === 0) return { decision: decideWith(r, q, intercepted), steps };
  }
  return { decision: NO_RULE, steps };
}

function why(field: Field, r: EgressRule, q: Query): string {
  switch (field) {
    case "to.port":
      return `port ${q.port} is not in ${r.ports.text}`;
    case "to.proto":
      return `protocol ${q.proto} is not ${r.proto}`;
    case "http.methods":
      return `method ${q.http?.method} is not one of ${r.http?.methods?.join(", ")}`;
    case "http.paths":
      return `path ${JSON.stringify(q.http?.path)} matches none of ${r.http?.paths?.map((p) => p.text).join(", ")}`;
    case "to.host":
      return q.name === null ? `the connection named no host (no SNI or Host); the rule names ${r.to.kind === "host" ? r.to.host.text : ""}` : "host differs";
    default:
      return field;
  }
}

export function explain(policy: Policy, q: Query): Explanation {
  const { decision, steps } = walk(policy, q);
  const nearMisses: NearMiss[] = [];
  if (decision.verdict === "deny") {
    for (const r of policy.egress) {
      if (r === decision.rule || r.action === "deny") continue;
      const failed = failedFields(r, q);
      if (failed.length !== 1) continue;
      const field = failed[0]!;
      const nameless = field === "to.host" && q.name === null;
      if (field === "from" || field === "to.cidr" || (field === "to.host" && !nameless)) continue;
      nearMisses.push({ rule: r, field, why: why(field, r, q) });
    }
  }
  return { decision, steps, nearMisses };
}
