/**
 * A child's output read a line at a time: each call resolves with the next line, without its
 * "\n". When the stream ends before a whole line, it throws an Error with `ended()`'s text (say,
 * the child's exit code or its stderr).
 */
export function lineReader(stream: ReadableStream<Uint8Array>, ended: () => Promise<string>): () => Promise<string> {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let buf = "";
  return async () => {
    for (;;) {
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        return line;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error(await ended());
      buf += dec.decode(value, { stream: true });
    }
  };
}
