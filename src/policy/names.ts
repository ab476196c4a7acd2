/**
 * The names the policy gives things, in one place for every module that checks one (the schema,
 * the attestors, the selector list, MCP pin names). Portable.
 */

/** A rule's name: 1-64 of letters, digits, '_', '.', '-', starting with a letter or digit. */
export const RULE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * A workload's name, which is also its cgroup's folder name (the cgroup tree keeps those to 63
 * characters): `tidegate run --workload` accepts no others.
 */
export const WORKLOAD_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
