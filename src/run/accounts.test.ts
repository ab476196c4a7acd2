import { describe, expect, test } from "bun:test";
import { findGroup, findListedGroup, findUser, readAccountFiles, supplementaryGroups, type AccountFiles } from "./accounts.ts";

const files: AccountFiles = {
  passwd: [
    "root:x:0:0:root:/root:/bin/bash",
    "# a comment",
    "broken line",
    "bad:x:notanumber:1::/:/bin/sh",
    "alice:x:1000:1000::/home/alice:/bin/sh",
    "alias:x:1000:1000::/home/alice:/bin/sh",
    "1001:x:1002:1002::/:/bin/sh",
    "big:x:4294967295:1::/:/bin/sh",
    "",
  ].join("\n"),
  group: [
    "root:x:0:",
    "alice:x:1000:",
    "audio:x:29:bob,alice",
    "video:x:44:alicex,bob",
    "staff:x:50:alice",
    "dup:x:50:alice",
    "nogroup:x:65534:",
    "1001:x:7:",
  ].join("\n"),
};

describe("findUser", () => {
  test.each([
    ["alice", { name: "alice", uid: 1000, gid: 1000 }],
    ["1000", { name: "alice", uid: 1000, gid: 1000 }], // the first line with the id wins
    ["alias", { name: "alias", uid: 1000, gid: 1000 }],
    ["1001", { name: "1001", uid: 1002, gid: 1002 }], // a name that is all digits is a name first
    ["4242", { name: null, uid: 4242, gid: null }], // a numeric user without a line
    ["0", { name: "root", uid: 0, gid: 0 }],
  ])("%p", (spec, want) => {
    expect(findUser(files, spec)).toEqual(want);
  });

  test.each(["nobody-here", "bad", "big", "4294967295", "-1", "", "1e3"])("%p is nobody", (spec) => {
    expect(findUser(files, spec)).toBeNull();
  });
});

describe("findGroup", () => {
  test.each([
    ["audio", 29],
    ["1001", 7],
    ["29", 29],
    ["123", 123],
    ["nosuch", null],
    ["4294967295", null],
  ] as const)("%p", (spec, want) => {
    expect(findGroup(files, spec)).toBe(want);
  });
});

describe("findListedGroup (the run group): only what /etc/group lists", () => {
  test.each([
    ["audio", 29],
    ["29", 29],
    ["123", null],
    ["nosuch", null],
  ] as const)("%p", (spec, want) => {
    expect(findListedGroup(files, spec)).toBe(want);
  });
});

describe("supplementaryGroups", () => {
  test("the primary group first, then every group listing the user's name, each once", () => {
    expect(supplementaryGroups(files, 1000, 1000)).toEqual([1000, 29, 50]);
  });

  test("a uid without a passwd line gets its primary group only", () => {
    expect(supplementaryGroups(files, 4242, 5)).toEqual([5]);
  });

  test("the primary group is not repeated when a group lists the user", () => {
    expect(supplementaryGroups(files, 1000, 50)).toEqual([50, 29]);
  });

  test("on this host: nobody is in nogroup only", () => {
    expect(supplementaryGroups(readAccountFiles(), 65534, 65534)).toEqual([65534]);
  });

  test("missing files read as empty", () => {
    expect(readAccountFiles({ passwd: "/nonexistent/passwd", group: "/nonexistent/group" })).toEqual({ passwd: "", group: "" });
  });
});
