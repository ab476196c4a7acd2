/**
 * The WebCrypto engine pkijs uses. The runtime's own `crypto.subtle` (Bun: BoringSSL; Deno: its
 * native one) when it has one, `@peculiar/webcrypto` otherwise. Importing this module sets it once.
 */
import * as pkijs from "pkijs";
import { Crypto as PeculiarCrypto } from "@peculiar/webcrypto";

function pick(): Crypto {
  const c = (globalThis as { crypto?: Crypto }).crypto;
  if (c?.subtle !== undefined && typeof c.getRandomValues === "function") return c;
  return new PeculiarCrypto() as unknown as Crypto;
}

export const webcrypto: Crypto = pick();
export const subtle: SubtleCrypto = webcrypto.subtle;

pkijs.setEngine("tidegate", new pkijs.CryptoEngine({ name: "tidegate", crypto: webcrypto }));
