/**
 * The seam between the vfio-user protocol logic (server, client) and whatever carries the messages:
 * an AF_UNIX stream socket with SCM_RIGHTS (production, native addon) or an in-memory pair (tests).
 *
 * Contract every implementation keeps:
 *
 * * **Framing.** `send` takes exactly one whole vfio-user message; `onMessage` delivers exactly one.
 *   A stream transport frames by the header: read 16 bytes, take `size` (offset 4, u32 LE), read
 *   `size − 16` more. If `size < 16` the stream cannot be framed: deliver the bytes read so far (the
 *   receiver closes the connection) or close. If `size` exceeds the transport's buffer ceiling it may
 *   skip the body and deliver only the 16-byte header — the server answers such a message with E2BIG
 *   from the header alone.
 * * **Bytes.** The receiver may keep the delivered bytes: a transport never reuses or overwrites
 *   them (it may hand out views into larger buffers). `send` copies what it needs before returning.
 * * **Order.** Messages arrive in the order they were sent; fds arrive with the message they were
 *   sent with (a socket transport reads the header with recvmsg so the fds land on the right message).
 * * **Fd ownership.** fds given to `send` stay owned by the caller (the kernel duplicates them into the
 *   peer). fds delivered by `onMessage` are owned by the receiver, which must close or keep each one.
 *   fds of messages that can no longer be delivered (receiver closed) are closed by the transport.
 * * **Errors.** `send` never throws; after the connection is closed it drops the message (fds are not
 *   consumed). `onClose` handlers run exactly once, asynchronously, after `close()` or a peer
 *   disconnect; no `onMessage` call follows.
 */

/** One received message and the fds that rode on it. */
export interface TransportMessage {
  bytes: Uint8Array;
  fds: number[];
}

export interface MessageTransport {
  /** Sends one whole message; `fds` are attached to it (SCM_RIGHTS) and remain the caller's. */
  send(bytes: Uint8Array, fds: number[]): void;
  /** Sets the receiver (one per transport; a later call replaces it). */
  onMessage(handler: (msg: TransportMessage) => void): void;
  /** Adds a handler run once when the connection is gone (either side). */
  onClose(handler: () => void): void;
  /** Closes the connection; idempotent. */
  close(): void;
  /** False once closed. */
  readonly isOpen: boolean;
}
