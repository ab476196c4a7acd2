/**
 * The header-read bound (`proxy.header_timeout`) of a connection whose HTTP/1.1 the proxy parses:
 * interception (intercept/exchange.ts), and an inbound listener's `forward_client_cert` (xfcc.ts)
 * and `mcp:` (mcp/relay.ts). It stops a slowloris client, which keeps a connection by sending a
 * request head a byte at a time: each byte restarts the idle bound, but not this one. Not covered:
 * between kept-alive requests, the empty lines HTTP/1.1 lets a client send before a request line
 * (the parser skips them) end a head's clock and restart the idle bound, so a client that sends
 * CRLF now and then keeps an idle connection, as TCP keep-alive would; it never gets a request
 * through that way.
 *
 * The owner says, after anything that may change it, whether it is waiting for a request head
 * (`update`): for a connection's first request from the moment the parser has it (for an
 * intercepted TLS connection that includes the handshake), for each later one from its first
 * byte; not while a request is being answered, nor between requests of a kept-alive connection
 * (the idle bound's business). The clock runs from the moment the owner is waiting until it is
 * not; `expired` is called when it runs out, never after `stop()`. The owner checks that it is
 * still waiting then (a change it did not report yet) and ends the connection if so; if not, the
 * next `update(true)` starts a new clock.
 */

/** Timers hold at most 2^31 - 1 ms; `proxy:` bounds are at most 24 days, which fits. */
export class HeadDeadline {
  #timer: ReturnType<typeof setTimeout> | null = null;
  #stopped = false;

  constructor(
    readonly ms: number,
    private readonly expired: () => void,
  ) {}

  update(waiting: boolean): void {
    if (this.#stopped) return;
    if (!waiting) {
      if (this.#timer !== null) clearTimeout(this.#timer);
      this.#timer = null;
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      this.expired();
    }, this.ms);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  /** What a connection the bound ended records (http_request, conn_close). */
  fields(): { reason: string; detail: string } {
    return { reason: "header_timeout", detail: `no whole request head within ${this.ms} ms` };
  }
}
