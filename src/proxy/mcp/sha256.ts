/** SHA-256 hex of a text with Bun's synchronous hasher: the MCP gate's argument hash without a trip through WebCrypto's thread. */
export function sha256Sync(text: string): string {
  return new Bun.CryptoHasher("sha256").update(text).digest("hex");
}
