/**
 * MCP over a stdio server's pipes (`tidegate run --mcp-stdio`; MCP 2025-11-25 "Transports",
 * stdio): newline-delimited JSON-RPC, one message per line, each line through the gate
 * (src/mcp/gate.ts).
 *
 * - Client to server: a line the gate passes is written to the server's stdin as it came; a
 *   refused one is answered on the client's stdout with its JSON-RPC error, and the server never
 *   sees it. A line over MAX_MCP_BODY bytes is refused likewise (error -32600, id null) and
 *   skipped to its end.
 * - Server to client: a line the gate passes goes out as it came, or filtered (a tools/list
 *   result); a line that does not parse, or is over MAX_MCP_BODY, is dropped (MCP: a server writes
 *   nothing but messages on stdout) and counted.
 * - `announce` (the agent calls it every second): when a reload, a registration change or an
 *   approval changed what the client may see of a list the server sent it, the client gets that
 *   list's list-changed notification (gate.ts `listsChanged`), so it lists again; until the
 *   client's stdout has ended.
 * - Empty lines and a CR before the LF are tolerated; lines go out with LF only.
 * - Each direction ends when its source does: the client's EOF closes the server's stdin, the
 *   server's EOF ends the client's stdout. Lines from both directions reach the client whole,
 *   never interleaved.
 */
import { jsonRpcError, type McpGate } from "../../mcp/index.ts";
import { MAX_MCP_BODY } from "./http-filter.ts";

export interface LineSink {
  /** Resolves when the sink can take more (backpressure). */
  write(bytes: Uint8Array): Promise<void> | void;
  end(): Promise<void> | void;
}

const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();

export type ByteSource = AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;

async function* chunksOf(source: ByteSource): AsyncGenerator<Uint8Array> {
  if (!("getReader" in source)) return yield* source;
  const reader = source.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) yield r.value;
  } finally {
    reader.releaseLock();
  }
}

/**
 * Splits a byte stream into lines (without LF or a CR before it); over-long ones are reported as
 * null, once, and skipped to their end. Each chunk is scanned once and a line's pieces are joined
 * once (a line cut into many small reads costs no more than one read).
 */
export async function* lines(source: ByteSource, max: number): AsyncGenerator<Uint8Array | null> {
  let parts: Uint8Array[] = [];
  let size = 0;
  let skipping = false;
  const line = (last: Uint8Array): Uint8Array | null => {
    const t = trimCr(parts.length === 0 ? last : join([...parts, last], size + last.length));
    return t.length > max ? null : t;
  };
  for await (const chunk of chunksOf(source)) {
    let start = 0;
    for (let i = chunk.indexOf(LF); i !== -1; i = chunk.indexOf(LF, start)) {
      if (!skipping) yield line(chunk.subarray(start, i));
      parts = [];
      size = 0;
      skipping = false;
      start = i + 1;
    }
    if (skipping || start === chunk.length) continue;
    const rest = chunk.subarray(start);
    size += rest.length;
    if (size > max + 1) {
      // over the limit before its end (one more byte allowed for a CR): reported now, skipped to its LF
      parts = [];
      size = 0;
      skipping = true;
      yield null;
    } else parts.push(rest.slice());
  }
  if (!skipping && size > 0) yield line(new Uint8Array(0)); // a last line without its LF
}

function join(pieces: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of pieces) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function trimCr(line: Uint8Array): Uint8Array {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, line.length - 1) : line;
}

function withLf(line: Uint8Array | string): Uint8Array {
  const bytes = typeof line === "string" ? encoder.encode(line) : line;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = LF;
  return out;
}

export class StdioRelay {
  /** Lines of the server dropped (not a message, or too long). */
  dropped = 0;
  /** Client lines refused (answered here). */
  refused = 0;
  private clientChain: Promise<void> = Promise.resolve();
  /** The client's stdout was ended: nothing more is written to it. */
  private clientEnded = false;
  /** List-changed notifications sent (`announce`). */
  announced = 0;

  constructor(
    private readonly gate: McpGate,
    private readonly toServer: LineSink,
    private readonly toClient: LineSink,
  ) {}

  /** One whole line to the client, after those queued before it. */
  private client(bytes: Uint8Array): Promise<void> {
    this.clientChain = this.clientChain.then(() => this.toClient.write(bytes));
    return this.clientChain;
  }

  /** Tells the client of each list whose filter changed since the server sent it (gate.ts `listsChanged`). */
  announce(): void {
    if (this.clientEnded) return;
    for (const method of this.gate.listsChanged()) {
      this.announced += 1;
      void this.client(withLf(JSON.stringify({ jsonrpc: "2.0", method })));
    }
  }

  /** Reads the client until its EOF, then ends the server's stdin. */
  async fromClient(source: ByteSource): Promise<void> {
    try {
      for await (const line of lines(source, MAX_MCP_BODY)) {
        if (line === null) {
          this.refused += 1;
          await this.client(withLf(JSON.stringify(jsonRpcError(null, -32600, `tidegate: a line of over ${MAX_MCP_BODY} bytes`))));
          continue;
        }
        if (line.length === 0) continue;
        const v = await this.gate.fromClient(line);
        if (v.pass) await this.toServer.write(withLf(line));
        else {
          this.refused += 1;
          if (v.answer !== null) await this.client(withLf(JSON.stringify(v.answer)));
        }
      }
    } finally {
      await this.toServer.end();
    }
  }

  /** Reads the server until its EOF, then ends the client's stdout. */
  async fromServer(source: ByteSource): Promise<void> {
    try {
      for await (const line of lines(source, MAX_MCP_BODY)) {
        if (line === null) {
          this.dropped += 1;
          continue;
        }
        if (line.length === 0) continue;
        const v = await this.gate.fromServer(line);
        if (v.kind === "invalid") this.dropped += 1;
        else await this.client(withLf(v.kind === "same" ? line : v.text));
      }
    } finally {
      this.clientEnded = true;
      await this.clientChain;
      await this.toClient.end();
      this.gate.close();
    }
  }
}
