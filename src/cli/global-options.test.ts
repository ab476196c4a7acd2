import { expect, test } from "bun:test";
import { flagsFor, placesFromValues, shellJoin } from "./global-options.ts";
import { route } from "./router.ts";
import { rootCommand } from "./main.ts";

test("flagsFor names the same places again, through the real argument parser", () => {
  const cases: Record<string, string>[] = [
    {},
    { instance: "t1" },
    { instance: "t1", "state-dir": "/tmp/a b/state", "run-dir": "/tmp/run" },
    { "server-config": "/etc/x.yaml", cgroup: "tg", "audit-dir": "/var/audit", "bpf-dir": "/sys/fs/bpf/x", config: "/c.yaml" },
  ];
  for (const values of cases) {
    const places = placesFromValues(values, {});
    const again = placesFromValues(route(rootCommand, ["version", ...flagsFor(places)]).values, {});
    expect(again).toEqual(places);
  }
  expect(flagsFor(placesFromValues({}, {}))).toEqual([]);
});

test("shellJoin quotes only what a shell would split or expand", () => {
  expect(shellJoin(["tidegate", "server", "--state-dir", "/tmp/a b", "--x", "it's"])).toBe(`tidegate server --state-dir '/tmp/a b' --x 'it'\\''s'`);
  const r = Bun.spawnSync(["sh", "-c", `printf '%s\\n' ${shellJoin(["a b", "it's", "$HOME", "plain"])}`]);
  expect(r.stdout.toString()).toBe("a b\nit's\n$HOME\nplain\n");
});
