/**
 * A Map that holds at most `max` entries: setting one more drops the oldest first (a key set again
 * counts as new). The proxies' caches use it so that no peer can grow them without bound.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly max: number) {
    super();
  }

  override set(key: K, value: V): this {
    this.delete(key);
    while (this.size >= this.max) {
      const oldest = this.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
    return super.set(key, value);
  }
}

/**
 * TLS sessions of upstream legs, for resumption (PLATFORM-NOTES: +34 % new connections; Bun takes
 * a session only through `socket.setSession()` in `open`). A key names everything the session
 * vouches for: upstream address and port, the name sent, what verifies the peer and, for mTLS,
 * the client SVID's serial; so a session is never offered under another identity or to another
 * peer. At most `max` sessions, the oldest dropped first.
 */
export class SessionCache extends BoundedMap<string, Uint8Array> {
  constructor(max = 1024) {
    super(max);
  }
}
