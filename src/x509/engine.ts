/**
 * The WebCrypto engine pkijs uses. The runtime's own `crypto.subtle` (Bun: BoringSSL; Deno: its
 * native one) when it has one, `@peculiar/webcrypto` otherwise. Importing this module sets it once.
 */
import * as pkijs from "pkijs";

/**
 * The fallback is imported only when needed: Bun and Deno both have `crypto.subtle`, and loading
 * @peculiar/webcrypto (with its own two copies of asn1js) costs startup time and memory in every
 * process for nothing there.
 */
async function pick(): Promise<Crypto> {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.subtle !== undefined && typeof c.getRandomValues === "function") return c;
  const { Crypto: PeculiarCrypto } = await import("@peculiar/webcrypto");
  return new PeculiarCrypto() as unknown as Crypto;
}

export const webcrypto: Crypto = await pick();
export const subtle: SubtleCrypto = webcrypto.subtle;

pkijs.setEngine("tidegate", new pkijs.CryptoEngine({ name: "tidegate", crypto: webcrypto }));
