/**
 * `MessageTransport` over a connected AF_UNIX stream socket (`FdSocket`, native addon), and a listener
 * that hands out one transport per accepted connection.
 *
 *   peer                                   SocketTransport                        receiver
 *     | sendmsg(header+payload, fds) ──────► readMessage(16, size − 16):
 *     |                                        recvmsg 16 bytes (fds ride on them)
 *     |                                        read exactly size − 16 more ─────► onMessage({bytes, fds})
 *     |                                      size < 16: deliver the 16 bytes, stop reading (receiver closes)
 *     |                                      size > maxMessageBytes: deliver the header alone, skip the body
 *     | ◄──────────────────────────────────── send(bytes, fds): sendmsg, fds on the first byte
 *     | EOF / reset ───────────────────────► close handlers (once, asynchronously)
 *
 * It keeps the `MessageTransport` contract (transport.ts): whole messages in order, fds with the
 * message they were sent with (the header is read with recvmsg and the read never goes past the end of
 * the message), delivered bytes are never reused, `send` copies and never throws, fds of messages that
 * can no longer be delivered are closed.
 *
 * Reading starts when the receiver registers its handler (`onMessage`), so nothing is read that nobody
 * can take. Delivered bytes are plain `Uint8Array`s (not `Buffer`s), so `slice()` on them copies.
 *
 * Compatibility: vfio-user framing of protocol major 0 (16-byte header, total size at offset 4, u32 LE).
 */
import { chmodSync } from "node:fs";
import { UnixListener } from "../native/unix-listener.ts";
import { closeAll, FdSocket, type FdSocketOptions } from "../native/unix-socket.ts";
import { HEADER_BYTES } from "./protocol/constants.ts";
import type { MessageTransport, TransportMessage } from "./transport.ts";

/** Offset of the u32 total-size field in the header. */
const SIZE_OFFSET = 4;
/** Bytes read per step while skipping an oversized body. */
const SKIP_CHUNK_BYTES = 64 * 1024;

export interface SocketTransportOptions {
  /**
   * Largest message read whole, header included, bytes. A larger one is delivered as its 16-byte header
   * alone (the server answers it E2BIG) and its body is read and dropped. Default 64 MiB + 4096 (QEMU's
   * largest max_data_xfer_size plus headers); range 16..2^32 − 1.
   */
  maxMessageBytes?: number;
  /**
   * Most fds taken per read; more are closed by the kernel (the message still arrives, with the fds
   * that fit). Default 64 (above any peer's max_msg_fds, so the receiver sees the excess); range 0..253.
   */
  maxFdsPerRead?: number;
}

export class SocketTransport implements MessageTransport {
  readonly #socket: FdSocket;
  readonly #maxMessageBytes: number;
  #handler: ((msg: TransportMessage) => void) | undefined;
  #closeHandlers: (() => void)[] = [];
  #reading = false;
  #open = true;
  #closeNotified = false;

  /** Takes ownership of `socket` (closed by `close()`). */
  constructor(socket: FdSocket, options: SocketTransportOptions = {}) {
    const max = options.maxMessageBytes ?? 64 * 1048576 + 4096;
    if (!Number.isInteger(max) || max < HEADER_BYTES || max > 0xffff_ffff) {
      throw new RangeError(`maxMessageBytes: ${HEADER_BYTES}..4294967295`);
    }
    this.#socket = socket;
    this.#maxMessageBytes = max;
  }

  /** Connects to a listening vfio-user socket at `path` (throws NativeError when nobody listens). */
  static connect(path: string, options: SocketTransportOptions = {}): SocketTransport {
    return new SocketTransport(FdSocket.connect(path, socketOptions(options)), options);
  }

  /** Two connected transports over a socketpair (tests, in-process peers). */
  static pair(options: SocketTransportOptions = {}): [SocketTransport, SocketTransport] {
    const [a, b] = FdSocket.pair(socketOptions(options));
    return [new SocketTransport(a, options), new SocketTransport(b, options)];
  }

  /** The underlying socket (for `ref()` / diagnostics; do not read from it). */
  get socket(): FdSocket {
    return this.#socket;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  send(bytes: Uint8Array, fds: number[]): void {
    if (!this.#open || bytes.byteLength === 0) return;
    // write() copies what the kernel does not take at once and dups fds it has to hold back.
    this.#socket.write(bytes, fds);
  }

  onMessage(handler: (msg: TransportMessage) => void): void {
    this.#handler = handler;
    if (!this.#reading && this.#open) {
      this.#reading = true;
      this.#readLoop().catch((e: unknown) => {
        // Only our own bug gets here (a receiver that threw, a broken invariant): surface it.
        this.close();
        queueMicrotask(() => {
          throw e;
        });
      });
    }
  }

  onClose(handler: () => void): void {
    this.#closeHandlers.push(handler);
    if (this.#closeNotified) queueMicrotask(handler);
  }

  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#socket.close();
    queueMicrotask(() => {
      this.#closeNotified = true;
      for (const h of this.#closeHandlers) h();
    });
  }

  async #readLoop(): Promise<void> {
    let skipBytes = 0;
    const payloadBytesOf = (header: Buffer): number | null => {
      const size = header.readUInt32LE(SIZE_OFFSET);
      if (size < HEADER_BYTES) return null;
      if (size > this.#maxMessageBytes) {
        skipBytes = size - HEADER_BYTES;
        return 0;
      }
      skipBytes = 0;
      return size - HEADER_BYTES;
    };
    while (this.#open) {
      const r = await this.#socket.readMessage(HEADER_BYTES, payloadBytesOf);
      if (!this.#open) {
        if (r.kind === "message") closeAll(r.fds);
        return;
      }
      switch (r.kind) {
        case "message": {
          const total = r.header.length + r.payload.length;
          const bytes = new Uint8Array(total);
          bytes.set(r.header, 0);
          bytes.set(r.payload, r.header.length);
          this.#deliver({ bytes, fds: r.fds });
          if (skipBytes > 0 && !(await this.#skip(skipBytes))) return;
          break;
        }
        case "invalid":
          // Unframeable: hand over what was read (the receiver closes), read nothing more.
          this.#deliver({ bytes: new Uint8Array(r.header), fds: [] });
          return;
        case "eof":
        case "error":
          this.close();
          return;
        case "closed":
          return;
      }
    }
  }

  /** Reads and drops `bytes` bytes (an oversized body); false if the stream ended meanwhile. */
  async #skip(bytes: number): Promise<boolean> {
    let left = bytes;
    while (left > 0 && this.#open) {
      const r = await this.#socket.readExact(Math.min(left, SKIP_CHUNK_BYTES));
      if (r.kind !== "data") {
        if (r.kind !== "closed") this.close();
        return false;
      }
      closeAll(r.fds); // fds belong to the first byte of a message; any here are stray
      left -= r.bytes.length;
    }
    return this.#open;
  }

  #deliver(msg: TransportMessage): void {
    const h = this.#handler;
    if (h === undefined || !this.#open) {
      closeAll(msg.fds);
      return;
    }
    h(msg);
  }
}

function socketOptions(options: SocketTransportOptions): FdSocketOptions {
  return options.maxFdsPerRead === undefined ? {} : { maxFdsPerRead: options.maxFdsPerRead };
}

export interface VfioUserListenOptions extends SocketTransportOptions {
  /** Remove a stale file at the path before binding. Default false (then EADDRINUSE is thrown). */
  replaceExisting?: boolean;
  /**
   * File mode of the socket, applied right after it is created (whoever can connect controls the
   * device). Default 0o600 (owner only); range 0..0o777.
   */
  socketMode?: number;
  /** Pending-connection queue length. Default 16, range 0..65535. */
  backlog?: number;
}

export interface VfioUserListener {
  /** Filesystem path of the socket. */
  readonly path: string;
  /** Stops accepting and removes the socket file; connections already handed out stay open. Idempotent. */
  close(): void;
}

/**
 * Listens for vfio-user clients at `path` (a UNIX socket file, created now: it exists once this
 * returns and the socket is listening). Each accepted connection becomes a `SocketTransport` given to
 * `onConnection` (typically `server.attach`). Throws NativeError when the path cannot be bound.
 */
export function listenVfioUser(
  path: string,
  onConnection: (transport: SocketTransport) => void,
  options: VfioUserListenOptions = {},
): VfioUserListener {
  const listener = UnixListener.listen(path, {
    ...(options.replaceExisting === undefined ? {} : { replaceExisting: options.replaceExisting }),
    ...(options.backlog === undefined ? {} : { backlog: options.backlog }),
    ...(options.maxFdsPerRead === undefined ? {} : { maxFdsPerRead: options.maxFdsPerRead }),
  });
  try {
    chmodSync(path, options.socketMode ?? 0o600);
  } catch (e) {
    listener.close();
    throw e;
  }
  let closed = false;
  const acceptLoop = async (): Promise<void> => {
    for (;;) {
      const socket = await listener.accept();
      if (socket === null) return;
      if (closed) {
        socket.close();
        return;
      }
      onConnection(new SocketTransport(socket, options));
    }
  };
  acceptLoop().catch((e: unknown) => {
    listener.close();
    queueMicrotask(() => {
      throw e;
    });
  });
  return {
    path,
    close(): void {
      if (closed) return;
      closed = true;
      listener.close();
    },
  };
}
