import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { memoryLogger } from "../runtime/log.ts";
import { unprivilegedPortStart, warnIfUnprotected } from "./egress-port.ts";

describe("egress_port_unprotected", () => {
  // [what, ip_unprivileged_port_start (null: unreadable), egress port, warns]
  const cases: [string, number | null, number, boolean][] = [
    ["the default sysctl (1024) protects port 1001", 1024, 1001, false],
    ["a sysctl just above the port protects it", 1002, 1001, false],
    ["a sysctl equal to the port leaves it open", 1001, 1001, true],
    ["a sysctl below the port leaves it open", 900, 1001, true],
    ["a sysctl of 0 (every port unprivileged) leaves it open", 0, 900, true],
    ["an instance's port 900 under a sysctl of 950 is protected", 950, 900, false],
    ["an unreadable sysctl says nothing", null, 1001, false],
  ];
  test.each(cases)("%s", (_what, start, port, warns) => {
    const logger = memoryLogger();
    expect(warnIfUnprotected(port, logger, () => start)).toBe(warns);
    const warned = logger.lines.filter((l) => l.event === "egress_port_unprotected");
    if (warns) {
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatchObject({ level: "warn", port, ip_unprivileged_port_start: start });
    } else {
      expect(logger.lines).toEqual([]);
    }
  });

  test("by default it reads the kernel's net.ipv4.ip_unprivileged_port_start (read only, never changed)", () => {
    const path = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let kernel: number | null;
    try {
      kernel = Number(readFileSync(path, "utf8").trim());
    } catch {
      kernel = null;
    }
    expect(unprivilegedPortStart()).toBe(kernel);
    if (kernel === null) return;
    const at = memoryLogger();
    expect(warnIfUnprotected(kernel, at)).toBe(true);
    expect(at.lines[0]).toMatchObject({ event: "egress_port_unprotected", port: kernel, ip_unprivileged_port_start: kernel });
    const below = memoryLogger();
    expect(warnIfUnprotected(kernel - 1, below)).toBe(false);
    expect(below.lines).toEqual([]);
  });
});
