/**
 * Requests from a client, pipelined or not (RFC 9112 section 9.3.2).
 *
 * After the end of a CONNECT request, or of one asking to upgrade (Connection: upgrade and an
 * Upgrade header), the next bytes may belong to another protocol, and only the response decides:
 * the parser holds them (`held`, up to maxHeadBytes) until the caller calls `resume()` (the
 * request was answered without a switch: they are parsed as the next request) or `tunnel()` (they
 * are returned, and every later push gives "tunnel" events).
 */
import { buildRequestHead } from "./head.ts";
import { HeadMemo } from "./memo.ts";
import { MessageParser } from "./parser.ts";
import type { HeadScanner } from "./scan.ts";
import type { RequestLine } from "./start-line.ts";
import type { RequestHead } from "./types.ts";

export class RequestParser extends MessageParser<RequestHead> {
  protected readonly skipEmptyLines = true;
  readonly #memo = new HeadMemo<RequestLine>();

  protected parseHead(b: Uint8Array, sc: HeadScanner): RequestHead {
    return buildRequestHead(b, sc, this.#memo);
  }

  protected repeat(prev: RequestHead): RequestHead {
    return prev;
  }

  protected holdsAfter(head: RequestHead): boolean {
    return head.method === "CONNECT" || head.upgrade.length > 0;
  }
}
