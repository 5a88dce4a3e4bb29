/**
 * A connected pair of in-memory `MessageTransport`s, for tests of the protocol logic.
 *
 * It models what matters of an AF_UNIX socket: ordered whole messages, bytes copied on send, fds
 * duplicated into the receiver (`dupFd`), fds of undeliverable messages closed (`discardFd`), close
 * seen by both ends exactly once. Messages sent before the peer registered its handler are queued;
 * messages sent before a `close()` are still delivered to the peer, then it sees the close (EOF).
 */
import type { MessageTransport, TransportMessage } from "./transport.ts";

export interface MemoryTransportOptions {
  /**
   * Deliver messages synchronously inside `send` (true) or on a later microtask (false, like a
   * socket). Synchronous delivery makes a whole exchange with a synchronous backend finish before
   * `send` returns (used by the fuzz test). Default false.
   */
  synchronous?: boolean;
  /** Models SCM_RIGHTS duplication: maps a sent fd to the fd the receiver gets. Default identity. */
  dupFd?: (fd: number) => number;
  /** Closes an fd the receiver can no longer get (connection closed). Default: does nothing. */
  discardFd?: (fd: number) => void;
}

// Received bytes are copied into slices of shared 64 KiB slabs, as a socket reader hands out slices
// of its read buffers. (A fresh small Uint8Array would live on the JS heap, and V8 copies such an
// array off-heap the first time a DataView is made over it — once per message in the decoders.)
const SLAB_BYTES = 64 * 1024;
const SLAB_MAX_COPY_BYTES = 4096;
let slab = new ArrayBuffer(SLAB_BYTES);
let slabUsed = 0;

function copyOut(bytes: Uint8Array): Uint8Array {
  const n = bytes.byteLength;
  if (n > SLAB_MAX_COPY_BYTES) return bytes.slice();
  if (slabUsed + n > SLAB_BYTES) {
    slab = new ArrayBuffer(SLAB_BYTES);
    slabUsed = 0;
  }
  const out = new Uint8Array(slab, slabUsed, n);
  out.set(bytes);
  slabUsed += (n + 7) & ~7;
  return out;
}

class MemoryEnd implements MessageTransport {
  peer!: MemoryEnd;
  #handler: ((msg: TransportMessage) => void) | undefined;
  #closeHandlers: (() => void)[] = [];
  #inbox: TransportMessage[] = [];
  #open = true;
  /** The peer closed: deliver what is already queued, then close (like EOF after buffered data). */
  #peerClosed = false;
  #closeNotified = false;
  #draining = false;

  constructor(private readonly options: MemoryTransportOptions) {}

  get isOpen(): boolean {
    return this.#open;
  }

  send(bytes: Uint8Array, fds: number[]): void {
    if (!this.#open) return;
    const dup = this.options.dupFd;
    const msg = { bytes: copyOut(bytes), fds: dup === undefined ? [...fds] : fds.map(dup) };
    this.peer.#enqueue(msg);
  }

  onMessage(handler: (msg: TransportMessage) => void): void {
    this.#handler = handler;
    this.#scheduleDrain();
  }

  onClose(handler: () => void): void {
    this.#closeHandlers.push(handler);
    if (this.#closeNotified) queueMicrotask(handler);
  }

  close(): void {
    if (!this.#open) return;
    this.#shutdown();
    this.peer.#onPeerClosed();
  }

  #onPeerClosed(): void {
    if (!this.#open) return;
    this.#peerClosed = true;
    if (this.#inbox.length === 0) this.#shutdown();
    else this.#scheduleDrain();
  }

  #enqueue(msg: TransportMessage): void {
    if (!this.#open || this.#peerClosed) {
      this.#discard(msg);
      return;
    }
    this.#inbox.push(msg);
    this.#scheduleDrain();
  }

  #scheduleDrain(): void {
    if (this.#handler === undefined || this.#inbox.length === 0) return;
    if (this.options.synchronous === true) this.#drain();
    else queueMicrotask(() => this.#drain());
  }

  #drain(): void {
    if (this.#draining) return; // a handler that sends re-enters; the running loop picks it up
    this.#draining = true;
    try {
      for (;;) {
        const h = this.#handler;
        if (!this.#open || h === undefined) break;
        const msg = this.#inbox.shift();
        if (msg === undefined) break;
        h(msg);
      }
    } finally {
      this.#draining = false;
    }
    if (this.#peerClosed && this.#inbox.length === 0) this.#shutdown();
  }

  #discard(msg: TransportMessage): void {
    const d = this.options.discardFd;
    if (d !== undefined) for (const fd of msg.fds) d(fd);
  }

  #shutdown(): void {
    if (!this.#open) return;
    this.#open = false;
    for (const m of this.#inbox.splice(0)) this.#discard(m);
    queueMicrotask(() => {
      this.#closeNotified = true;
      for (const h of this.#closeHandlers) h();
    });
  }
}

/** Two connected ends: what one sends, the other receives. */
export function createMemoryTransportPair(
  options: MemoryTransportOptions = {},
): [MessageTransport, MessageTransport] {
  const a = new MemoryEnd(options);
  const b = new MemoryEnd(options);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
