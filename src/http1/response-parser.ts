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

export class ResponseParser extends MessageParser<ResponseHead> {
  protected readonly skipEmptyLines = false;
  /** The requests announced, in order: each one's method, and whether it asked to upgrade (two arrays: no object per request). */
  readonly #methods: string[] = [];
  readonly #upgrades: boolean[] = [];
  readonly #memo = new HeadMemo<StatusLine>();
  #first = 0;

  /**
   * A request was sent: the next final response answers it. `upgrade`: it asked to switch
   * protocols (its head's `upgrade` is not empty), so a 101 may answer it.
   */
  expect(method: string, upgrade = false): void {
    this.#methods.push(method);
    this.#upgrades.push(upgrade);
  }

  /** Requests announced and not answered yet. */
  get waiting(): number {
    return this.#methods.length - this.#first;
  }

  protected parseHead(b: Uint8Array, sc: HeadScanner): ResponseHead {
    const at = this.#next();
    const head = buildResponseHead(b, sc, this.#methods[at]!, this.#upgrades[at]!, this.#memo);
    this.#answered(head);
    return head;
  }

  protected repeat(prev: ResponseHead): ResponseHead | null {
    const at = this.#next();
    if (this.#methods[at] !== prev.requestMethod || (prev.status === 101 && !this.#upgrades[at])) return null;
    this.#answered(prev);
    return prev;
  }

  /** Where the first request waiting is in the arrays. */
  #next(): number {
    if (this.#first >= this.#methods.length) throw fail("http1_unexpected_response", "a response when no request waits for one");
    return this.#first;
  }

  /** A final response (not an interim 1xx) answers the first request waiting. */
  #answered(head: ResponseHead): void {
    if (head.status >= 200 || head.status === 101) {
      this.#first++;
      if (this.#first > 64 && this.#first * 2 > this.#methods.length) {
        this.#methods.splice(0, this.#first);
        this.#upgrades.splice(0, this.#first);
        this.#first = 0;
      }
    }
  }

  protected holdsAfter(): boolean {
    return false;
  }
}
