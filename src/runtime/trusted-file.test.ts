import { describe, expect, test } from "bun:test";
import { untrustedFileReason, type FileFacts } from "./trusted-file.ts";

function fs(entries: Record<string, { uid: number; mode: number; file?: boolean }>, links: Record<string, string> = {}) {
  return {
    stat: (p: string): FileFacts => {
      const e = entries[p];
      if (e === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
      return { uid: e.uid, mode: e.mode, isFile: () => e.file !== false };
    },
    realpath: (p: string) => {
      const r = links[p] ?? p;
      if (entries[r] === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
      return r;
    },
  };
}

describe("untrustedFileReason", () => {
  const ok = { "/etc/tidegate": { uid: 0, mode: 0o40755, file: false }, "/etc/tidegate/tidegate.yaml": { uid: 0, mode: 0o100644 } };
  test("root's file in root's folder, only root writing: trusted; an absent file is not judged here", () => {
    expect(untrustedFileReason("/etc/tidegate/tidegate.yaml", 0, fs(ok))).toBeNull();
    expect(untrustedFileReason("/etc/tidegate/missing.yaml", 0, fs(ok))).toBeNull();
  });
  test("each rejection names why", () => {
    const f = "/etc/tidegate/tidegate.yaml";
    expect(untrustedFileReason(f, 0, fs({ ...ok, [f]: { uid: 1000, mode: 0o100644 } }))).toContain("belongs to uid 1000, not root");
    expect(untrustedFileReason(f, 0, fs({ ...ok, [f]: { uid: 0, mode: 0o100664 } }))).toContain("writable by its group (mode 664)");
    expect(untrustedFileReason(f, 0, fs({ ...ok, [f]: { uid: 0, mode: 0o100646 } }))).toContain("writable by other users");
    expect(untrustedFileReason(f, 0, fs({ ...ok, [f]: { uid: 0, mode: 0o40755, file: false } }))).toContain("not a regular file");
    expect(untrustedFileReason(f, 0, fs({ ...ok, "/etc/tidegate": { uid: 1000, mode: 0o40755, file: false } }))).toContain("its folder /etc/tidegate belongs to uid 1000");
    expect(untrustedFileReason(f, 0, fs({ ...ok, "/etc/tidegate": { uid: 0, mode: 0o40777, file: false } }))).toContain("writable by other users and not sticky");
  });
  test("a sticky shared folder (like /tmp) is fine; a symlink is judged by its target", () => {
    expect(untrustedFileReason("/tmp/c.yaml", 0, fs({ "/tmp": { uid: 0, mode: 0o41777, file: false }, "/tmp/c.yaml": { uid: 0, mode: 0o100600 } }))).toBeNull();
    const links = { "/etc/tidegate/tidegate.yaml": "/home/u/c.yaml" };
    const entries = { ...ok, "/home/u": { uid: 1000, mode: 0o40755, file: false }, "/home/u/c.yaml": { uid: 1000, mode: 0o100644 } };
    expect(untrustedFileReason("/etc/tidegate/tidegate.yaml", 0, fs(entries, links))).toContain("/home/u/c.yaml belongs to uid 1000");
  });
  test("a process that is not root may also use its own files", () => {
    const mine = { "/home/u": { uid: 1000, mode: 0o40755, file: false }, "/home/u/c.yaml": { uid: 1000, mode: 0o100644 } };
    expect(untrustedFileReason("/home/u/c.yaml", 1000, fs(mine))).toBeNull();
    expect(untrustedFileReason("/home/u/c.yaml", 1001, fs(mine))).toContain("not root or uid 1001");
  });
});
