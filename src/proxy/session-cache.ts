/**
 * TLS sessions of upstream legs, for resumption (PLATFORM-NOTES: +34 % new connections; Bun takes
 * a session only through `socket.setSession()` in `open`). A key names everything the session
 * vouches for: upstream address and port, the name sent, what verifies the peer and, for mTLS,
 * the client SVID's serial; so a session is never offered under another identity or to another
 * peer. At most `max` sessions, the oldest dropped first.
 */
export class SessionCache {
  private readonly m = new Map<string, Uint8Array>();

  constructor(private readonly max = 1024) {}

  get(key: string): Uint8Array | undefined {
    return this.m.get(key);
  }

  set(key: string, session: Uint8Array): void {
    this.m.delete(key);
    while (this.m.size >= this.max) {
      const oldest = this.m.keys().next();
      if (oldest.done) break;
      this.m.delete(oldest.value);
    }
    this.m.set(key, session);
  }

  get size(): number {
    return this.m.size;
  }
}
