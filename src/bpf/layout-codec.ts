/**
 * Shared pieces of the layout encoders and decoders (not exported from layout.ts): host byte
 * order, range checks that throw BpfError bpf_layout, and addresses in 16-byte arrays.
 */
import { ipFromBytes, ipToBytes, type IpAddress } from "../policy/address.ts";
import { BpfError } from "./errors.ts";
import { LAYOUT } from "./layout-table.ts";

/** Host order is little-endian on every platform the FFI layer loads on (x64, arm64). */
export const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const U64_MAX = (1n << 64n) - 1n;

export function bad(op: string, why: string): BpfError {
  return new BpfError("bpf_layout", op, 0, `bpf: ${op}: ${why}`);
}

export function view(bytes: Uint8Array, struct: keyof typeof LAYOUT | number, op: string): DataView {
  const size = typeof struct === "number" ? struct : LAYOUT[struct].size;
  if (bytes.length !== size) throw bad(op, `${bytes.length} bytes, want ${size}${typeof struct === "number" ? "" : ` (struct ${struct})`}`);
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function uint(op: string, what: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max) throw bad(op, `${what} ${v} is not an integer 0..${max}`);
  return v;
}

export function u64(op: string, what: string, v: bigint): bigint {
  if (v < 0n || v > U64_MAX) throw bad(op, `${what} ${v} does not fit 64 bits`);
  return v;
}

/** Writes `a` (network order) into a 16-byte address array at `offset`: IPv4 in word 0. */
export function putAddr(out: Uint8Array, offset: number, a: IpAddress): void {
  out.set(ipToBytes(a), offset);
}

/** The address of `family` in a 16-byte array at `offset` (IPv4 in word 0). */
export function getAddr(bytes: Uint8Array, offset: number, family: number, op: string): IpAddress {
  if (family !== 4 && family !== 6) throw bad(op, `address family ${family}, want 4 or 6`);
  return ipFromBytes(bytes.slice(offset, offset + (family === 4 ? 4 : 16)));
}
