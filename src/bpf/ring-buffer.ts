/**
 * A consumer of a BPF_MAP_TYPE_RINGBUF map (libbpf's ring_buffer).
 *
 * Guarantees:
 * - each record is copied out of the shared ring before `onRecord` sees it, so the bytes stay
 *   valid after the callback returns;
 * - poll and consume run the callback on the calling (JS) thread, inside the libbpf call; they
 *   must not be called from inside `onRecord`;
 * - an exception from `onRecord` stops the batch (that record counts as consumed) and is
 *   rethrown from poll/consume; the records after it stay in the ring for the next call;
 * - the map fd must stay open while the ring buffer lives (libbpf does not dup it);
 * - close() frees the ring buffer and then the callback; it is idempotent.
 */
import { JSCallback, toArrayBuffer, type Pointer } from "bun:ffi";
import { BpfError, EINTR } from "./errors.ts";
import { bpfFailure, checkedPtr, libs, logMark } from "./ffi-call.ts";
import { SAMPLE_FN } from "./libbpf-symbols.ts";

export class RingBuffer {
  #rb: Pointer | null;
  #callback: JSCallback | null;
  #thrown: { error: unknown } | null = null;
  readonly #mapFd: number;

  constructor(mapFd: number, onRecord: (data: Uint8Array) => void) {
    const { bpf } = libs();
    this.#mapFd = mapFd;
    const callback = new JSCallback((_ctx: Pointer, data: Pointer, size: number | bigint) => {
      try {
        const n = Number(size);
        onRecord(n === 0 ? new Uint8Array(0) : new Uint8Array(toArrayBuffer(data, 0, n).slice(0)));
        return 0;
      } catch (e) {
        this.#thrown = { error: e };
        return -1;
      }
    }, SAMPLE_FN);
    const mark = logMark();
    try {
      this.#rb = checkedPtr(bpf.ring_buffer__new(mapFd, callback.ptr, null, null), "bpf_ringbuf", "ring_buffer__new", `on map fd ${mapFd}`, mark);
    } catch (e) {
      callback.close();
      throw e;
    }
    this.#callback = callback;
  }

  #ptr(op: string): Pointer {
    if (this.#rb === null) throw new BpfError("bpf_closed", op, 0, `bpf: ${op} on the closed ring buffer of map fd ${this.#mapFd}`);
    return this.#rb;
  }

  #done(op: string, ret: number): number {
    const thrown = this.#thrown;
    this.#thrown = null;
    if (thrown !== null) throw thrown.error;
    if (ret === -EINTR) return 0;
    if (ret < 0) throw bpfFailure("bpf_ringbuf", op, -ret, `on map fd ${this.#mapFd}`);
    return ret;
  }

  /** Waits up to `timeoutMs` (0: not at all, -1: forever) for records; returns how many were handled. */
  poll(timeoutMs: number): number {
    return this.#done("ring_buffer__poll", libs().bpf.ring_buffer__poll(this.#ptr("ring_buffer__poll"), timeoutMs));
  }

  /** Handles every record already in the ring without waiting; returns how many. */
  consume(): number {
    return this.#done("ring_buffer__consume", libs().bpf.ring_buffer__consume(this.#ptr("ring_buffer__consume")));
  }

  /** An epoll fd that becomes readable when records arrive (owned by the ring buffer). */
  epollFd(): number {
    return libs().bpf.ring_buffer__epoll_fd(this.#ptr("ring_buffer__epoll_fd"));
  }

  close(): void {
    if (this.#rb !== null) {
      libs().bpf.ring_buffer__free(this.#rb);
      this.#rb = null;
    }
    this.#callback?.close();
    this.#callback = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
