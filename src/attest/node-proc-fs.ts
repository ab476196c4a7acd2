/**
 * The real ProcFs, on node:fs. Small /proc and /etc files are read synchronously: the kernel makes
 * them in memory and an async round trip costs more than the read (a cached attestation must stay
 * under 20 µs). Executables are hashed asynchronously, in 1 MiB reads of one descriptor.
 */
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, readlinkSync, readSync, statSync, type BigIntStats } from "node:fs";
import { createHash } from "node:crypto";
import type { FileStat, HashedFile, ProcFs } from "./proc-fs.ts";
import { open } from "node:fs/promises";

function toStat(s: BigIntStats): FileStat {
  return {
    dev: s.dev,
    ino: s.ino,
    size: s.size,
    mtimeNs: s.mtimeNs,
    ctimeNs: s.ctimeNs,
    nlink: Number(s.nlink),
    uid: Number(s.uid),
    gid: Number(s.gid),
    isDirectory: s.isDirectory(),
  };
}

const CHUNK = 1 << 20;
const MAX_EXACT = 2 ** 53;
const small = Buffer.alloc(64 * 1024);

export const nodeProcFs: ProcFs = {
  async readText(path) {
    return nodeProcFs.readTextSync(path);
  },
  readTextSync(path) {
    // One read of a 64 KiB buffer covers every /proc file we read; longer files fall back.
    const n = nodeProcFs.readBytesSync(path, small);
    return n < small.length ? small.toString("utf8", 0, n) : readFileSync(path, "utf8");
  },
  readBytesSync(path, into) {
    const fd = openSync(path, "r");
    try {
      return readSync(fd, into, 0, into.length, null);
    } finally {
      closeSync(fd);
    }
  },
  async readlink(path) {
    return readlinkSync(path);
  },
  async stat(path) {
    return toStat(statSync(path, { bigint: true }));
  },
  fileIdSync(path) {
    // A stat of numbers allocates far less than one of bigints (this runs on every cached
    // attestation); a device or inode number past 2^53 (overlayfs sets high inode bits) would
    // be rounded, so those are read again as bigints. Rounding is monotonic: any such number
    // reads as at least 2^53 here.
    const s = statSync(path);
    if (s.ino < MAX_EXACT && s.dev < MAX_EXACT) return `${s.dev}:${s.ino}`;
    const b = statSync(path, { bigint: true });
    return `${b.dev}:${b.ino}`;
  },
  async owner(path) {
    return nodeProcFs.ownerSync(path);
  },
  ownerSync(path) {
    const s = lstatSync(path);
    return { uid: s.uid, gid: s.gid };
  },
  async hashFile(path): Promise<HashedFile> {
    const fh = await open(path, "r");
    try {
      const before = toStat(fstatSync(fh.fd, { bigint: true }));
      const hash = createHash("sha256");
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        hash.update(buf.subarray(0, bytesRead));
      }
      const after = toStat(fstatSync(fh.fd, { bigint: true }));
      return { sha256: hash.digest("hex"), before, after };
    } finally {
      await fh.close();
    }
  },
};
