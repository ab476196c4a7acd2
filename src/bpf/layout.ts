/**
 * The TypeScript mirror of bpf/tidegate.h (STYLE.md point 9): constants, the byte layout of every
 * struct that crosses between the eBPF programs and the agent, and byte-exact encoders and
 * decoders. layout-btf.test.ts checks the table against the BTF of the built bpf/tidegate.bpf.o.
 *
 * Byte order (tidegate.h): addresses in network order, every other field in host order (the
 * CPU's: little-endian on x64 and arm64). An IPv4 address in a 4-word array sits in word 0.
 * Encoders reject what the C side cannot represent (BpfError bpf_layout); decoders reject a
 * buffer of the wrong size or an address family other than 4 and 6.
 */
export * from "./layout-table.ts";
export * from "./layout-policy.ts";
export * from "./layout-records.ts";
