/**
 * Responses from a server. A response's framing depends on its request (RFC 9112 section 6.3: a
 * response to HEAD has no body, a 2xx to CONNECT opens a tunnel, a 101 only answers an upgrade
 * request), so the caller announces each request it sends, in order, with `expect`. Interim
 * responses (1xx but 101) answer the same request as the final response after them. A response
 * with no request announced is refused (http1_unexpected_response).
 */
import { fail } from "./errors.ts";
import { buildResponseHead } from "./head.ts";
import { HeadMemo } from "./memo.ts";
import { MessageParser } from "./parser.ts";
import type { HeadScanner } from "./scan.ts";
import type { StatusLine } from "./start-line.ts";
import type { ResponseHead } from "./types.ts";

interface Expected {
  readonly method: string;
  readonly upgrade: boolean;
}

export class ResponseParser extends MessageParser<ResponseHead> {
  protected readonly skipEmptyLines = false;
  readonly #expected: Expected[] = [];
  readonly #memo = new HeadMemo<StatusLine>();
  #first = 0;

  /**
   * A request was sent: the next final response answers it. `upgrade`: it asked to switch
   * protocols (its head's `upgrade` is not empty), so a 101 may answer it.
   */
  expect(method: string, upgrade = false): void {
    this.#expected.push({ method, upgrade });
  }

  /** Requests announced and not answered yet. */
  get waiting(): number {
    return this.#expected.length - this.#first;
  }

  protected parseHead(b: Uint8Array, sc: HeadScanner): ResponseHead {
    const req = this.#next();
    const head = buildResponseHead(b, sc, req.method, req.upgrade, this.#memo);
    this.#answered(head);
    return head;
  }

  protected repeat(prev: ResponseHead): ResponseHead | null {
    const req = this.#next();
    if (req.method !== prev.requestMethod || (prev.status === 101 && !req.upgrade)) return null;
    this.#answered(prev);
    return Object.freeze({ ...prev });
  }

  #next(): Expected {
    const req = this.#expected[this.#first];
    if (req === undefined) throw fail("http1_unexpected_response", "a response when no request waits for one");
    return req;
  }

  /** A final response (not an interim 1xx) answers the first request waiting. */
  #answered(head: ResponseHead): void {
    if (head.status >= 200 || head.status === 101) {
      this.#first++;
      if (this.#first > 64 && this.#first * 2 > this.#expected.length) {
        this.#expected.splice(0, this.#first);
        this.#first = 0;
      }
    }
  }

  protected holdsAfter(): boolean {
    return false;
  }
}
