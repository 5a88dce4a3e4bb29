/**
 * `FdSocket`: a connected, non-blocking AF_UNIX stream socket that carries fds with its bytes,
 * driven by a readiness watch on Node's event loop (no threads).
 *
 * Reading is message-exact, as libvfio-user and SPDK do it: `readMessage` reads a fixed-size
 * header (collecting the fds that arrive with it), asks the caller how long the payload is, then
 * reads exactly that many bytes. It never reads past the end of a message, so fds sent with a
 * message always arrive with that message (the kernel hands out fds with the first byte of their
 * send and ends a read right after it). Reads are serialized: concurrent calls queue up.
 *
 *   reader                                   FdSocket                         kernel
 *     | readMessage(16, lenOf) ---------------->|                                  |
 *     |                                         |-- recvmsg(16 - got) ------------->|  (EAGAIN: wait "r")
 *     |                                         |<-- header bytes + fds ------------|
 *     |                                         |   n = lenOf(header)              |
 *     |                                         |-- recvmsg(n - got) ... ---------->|
 *     |<-- { kind: "message", header, payload, fds }                               |
 *
 * Writing queues what the kernel does not take at once (EAGAIN or a short write) and finishes
 * it when the socket becomes writable. fds go with the first byte of their write; if the write
 * has to wait, the socket keeps its own copies (dup) until they are sent, so the caller may close
 * its fds as soon as `write` returns.
 *
 * Peer behaviour (end of stream, reset, broken pipe) is reported as values, never thrown.
 * Ownership: fds in a completed read result belong to the caller; fds collected by a read that
 * did not complete (end of stream, error, close) are closed here.
 */
import { constants as osConstants } from "node:os";
import {
  close,
  connectUnix,
  dup,
  EAGAIN,
  type ErrnoName,
  errnoName,
  recvmsg,
  refWatch,
  sendmsgv,
  setNonBlocking,
  socketpair,
  unwatch,
  updateWatch,
  type WatchEvents,
  type WatchHandle,
  type WatchInterest,
  watch,
} from "./addon.ts";

/** errno reported to waiters when the socket is closed locally. */
export const ECANCELED = osConstants.errno.ECANCELED;

export interface FdSocketOptions {
  /**
   * Most fds accepted per recvmsg; more are closed by the kernel and the read reports `ctrunc`.
   * Default 64, range 0..253.
   */
  maxFdsPerRead?: number;
}

/** Why a read ended without data. */
export type ReadEnd =
  /** The peer closed its end; `partialBytes` of the requested bytes had arrived. */
  | { kind: "eof"; partialBytes: number }
  /** The stream failed (ECONNRESET, ...). */
  | { kind: "error"; errno: number; code: ErrnoName | "EUNKNOWN" }
  /** `close()` was called on this socket. */
  | { kind: "closed" };

export type ReadExactResult =
  | {
      kind: "data";
      bytes: Buffer;
      /** fds that came with these bytes; the caller owns them. */
      fds: number[];
      /** More fds were sent than `maxFdsPerRead`: the surplus was closed by the kernel. */
      ctrunc: boolean;
    }
  | ReadEnd;

export type ReadMessageResult =
  | {
      kind: "message";
      header: Buffer;
      payload: Buffer;
      /** fds that came with the message (normally with its header); the caller owns them. */
      fds: number[];
      ctrunc: boolean;
    }
  /** `payloadBytesOf` refused the header; the stream is out of step and should be closed. */
  | { kind: "invalid"; header: Buffer }
  | ReadEnd;

/** Outcome of the writes queued so far. */
export type DrainResult = { ok: true } | { ok: false; errno: number; code: ErrnoName | "EUNKNOWN" };

interface PendingRead {
  buffer: Buffer;
  filled: number;
  fds: number[];
  ctrunc: boolean;
  resolve: (result: ReadExactResult) => void;
}

interface QueuedWrite {
  /** Remaining bytes, copied when queued. */
  data: Buffer;
  /** Our own dups, sent with the first byte of `data`, then closed. */
  fds: number[];
}

const noop = (): void => {};

export class FdSocket {
  /** The socket's fd; owned by this object until `close()`. */
  readonly fd: number;
  readonly #maxFdsPerRead: number;
  #watch: WatchHandle | undefined;
  #interest: WatchInterest = "";
  #readChain: Promise<unknown> = Promise.resolve();
  #read: PendingRead | undefined;
  #writes: QueuedWrite[] = [];
  #drainWaiters: Array<(result: DrainResult) => void> = [];
  #writeErrno = 0;
  #closed = false;
  #pollErrno = 0;

  /** Takes ownership of a connected AF_UNIX stream socket fd and makes it non-blocking. */
  constructor(fd: number, options: FdSocketOptions = {}) {
    this.fd = fd;
    this.#maxFdsPerRead = options.maxFdsPerRead ?? 64;
    setNonBlocking(fd, true);
  }

  /** Connects to a listening socket at `path`. */
  static connect(path: string, options?: FdSocketOptions): FdSocket {
    return new FdSocket(connectUnix(path), options);
  }

  /** Two connected sockets. */
  static pair(options?: FdSocketOptions): [FdSocket, FdSocket] {
    const [a, b] = socketpair();
    return [new FdSocket(a, options), new FdSocket(b, options)];
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** errno of the first failed write (0 while writes work). Later writes are dropped. */
  get writeErrno(): number {
    return this.#writeErrno;
  }

  /** Bytes waiting in the write queue. */
  get queuedBytes(): number {
    let total = 0;
    for (const w of this.#writes) total += w.data.length;
    return total;
  }

  // ---- reading -------------------------------------------------------------------------------

  /** Reads exactly `bytes` bytes (≥ 0) and the fds that come with them. */
  readExact(bytes: number): Promise<ReadExactResult> {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`readExact: bad length ${bytes}`);
    return this.#serialize(() => this.#readRaw(bytes));
  }

  /**
   * Reads one message: `headerBytes` bytes, then exactly `payloadBytesOf(header)` bytes. fds from
   * both parts are returned together. `payloadBytesOf` returns null (or a bad number) to refuse the
   * header; the fds that came with it are then closed.
   */
  readMessage(
    headerBytes: number,
    payloadBytesOf: (header: Buffer) => number | null,
  ): Promise<ReadMessageResult> {
    if (!Number.isSafeInteger(headerBytes) || headerBytes < 1) {
      throw new RangeError(`readMessage: bad header length ${headerBytes}`);
    }
    return this.#serialize(async (): Promise<ReadMessageResult> => {
      const head = await this.#readRaw(headerBytes);
      if (head.kind !== "data") return head;
      let payloadBytes: number | null;
      try {
        payloadBytes = payloadBytesOf(head.bytes);
      } catch (error) {
        closeAll(head.fds);
        throw error;
      }
      if (payloadBytes === null || !Number.isSafeInteger(payloadBytes) || payloadBytes < 0) {
        closeAll(head.fds);
        return { kind: "invalid", header: head.bytes };
      }
      const body = await this.#readRaw(payloadBytes);
      if (body.kind !== "data") {
        closeAll(head.fds);
        return body;
      }
      return {
        kind: "message",
        header: head.bytes,
        payload: body.bytes,
        fds: head.fds.concat(body.fds),
        ctrunc: head.ctrunc || body.ctrunc,
      };
    });
  }

  #serialize<T>(job: () => Promise<T>): Promise<T> {
    const run = this.#readChain.then(job);
    this.#readChain = run.then(noop, noop);
    return run;
  }

  #readRaw(bytes: number): Promise<ReadExactResult> {
    if (this.#closed) return Promise.resolve({ kind: "closed" });
    if (bytes === 0) return Promise.resolve({ kind: "data", bytes: Buffer.alloc(0), fds: [], ctrunc: false });
    return new Promise((resolve) => {
      this.#read = { buffer: Buffer.allocUnsafe(bytes), filled: 0, fds: [], ctrunc: false, resolve };
      this.#pumpRead();
    });
  }

  #pumpRead(): void {
    const read = this.#read;
    if (read === undefined) return;
    while (read.filled < read.buffer.length) {
      const r = recvmsg(
        this.fd,
        read.buffer,
        read.filled,
        read.buffer.length - read.filled,
        this.#maxFdsPerRead,
      );
      if ("errno" in r) {
        if (r.errno === EAGAIN && this.#pollErrno === 0) {
          this.#setInterest();
          return;
        }
        const errno = r.errno === EAGAIN ? this.#pollErrno : r.errno;
        this.#endRead({ kind: "error", errno, code: errnoName(errno) });
        return;
      }
      for (const fd of r.fds) read.fds.push(fd);
      if (r.ctrunc) read.ctrunc = true;
      if (r.eof) {
        this.#endRead({ kind: "eof", partialBytes: read.filled });
        return;
      }
      read.filled += r.bytes;
    }
    this.#read = undefined;
    this.#setInterest();
    read.resolve({ kind: "data", bytes: read.buffer, fds: read.fds, ctrunc: read.ctrunc });
  }

  #endRead(end: ReadEnd): void {
    const read = this.#read;
    if (read === undefined) return;
    this.#read = undefined;
    closeAll(read.fds);
    this.#setInterest();
    read.resolve(end);
  }

  // ---- writing -------------------------------------------------------------------------------

  /**
   * Sends `data` (one buffer or several, written as one stream) with `fds` on its first byte.
   * Returns true if the kernel took everything now, false if some of it waits in the queue (see
   * `drain()`) or the socket can no longer write (`writeErrno`, `closed`). Never throws for peer
   * behaviour.
   */
  write(data: Uint8Array | readonly Uint8Array[], fds: readonly number[] = []): boolean {
    const chunks: readonly Uint8Array[] = data instanceof Uint8Array ? [data] : data;
    let total = 0;
    for (const c of chunks) total += c.byteLength;
    if (fds.length > 0 && total === 0) throw new RangeError("write: fds need at least one byte");
    if (this.#closed || this.#writeErrno !== 0) return false;
    if (total === 0) return this.#writes.length === 0;
    if (this.#writes.length > 0) {
      this.#enqueue(
        chunks,
        0,
        fds.map((fd) => dup(fd)),
      );
      return false;
    }
    const n = sendmsgv(this.fd, chunks, fds);
    if (typeof n !== "number") {
      if (n.errno !== EAGAIN) {
        this.#failWrites(n.errno);
        return false;
      }
      this.#enqueue(
        chunks,
        0,
        fds.map((fd) => dup(fd)),
      );
      this.#setInterest();
      return false;
    }
    if (n === total) return true;
    this.#enqueue(chunks, n, []); // the fds left with the first byte
    this.#setInterest();
    return false;
  }

  /** Resolves once every queued byte has been handed to the kernel, or writing failed. */
  drain(): Promise<DrainResult> {
    if (this.#writeErrno !== 0) return Promise.resolve(failure(this.#writeErrno));
    if (this.#closed) return Promise.resolve(failure(ECANCELED));
    if (this.#writes.length === 0) return Promise.resolve({ ok: true });
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #enqueue(chunks: readonly Uint8Array[], skipBytes: number, fds: number[]): void {
    // Buffer.concat copies, so the caller may reuse its buffers at once.
    const data = Buffer.concat(chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
    this.#writes.push({ data: data.subarray(skipBytes), fds });
  }

  #pumpWrite(): void {
    while (this.#writes.length > 0) {
      const head = this.#writes[0]!;
      const n = sendmsgv(this.fd, [head.data], head.fds);
      if (typeof n !== "number") {
        if (n.errno === EAGAIN && this.#pollErrno === 0) {
          this.#setInterest();
          return;
        }
        this.#failWrites(n.errno === EAGAIN ? this.#pollErrno : n.errno);
        return;
      }
      closeAll(head.fds);
      head.fds = [];
      if (n === head.data.length) {
        this.#writes.shift();
      } else {
        head.data = head.data.subarray(n);
      }
    }
    this.#setInterest();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const resolve of waiters) resolve({ ok: true });
  }

  #failWrites(errno: number): void {
    if (this.#writeErrno === 0) this.#writeErrno = errno;
    for (const w of this.#writes) closeAll(w.fds);
    this.#writes = [];
    this.#setInterest();
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const resolve of waiters) resolve(failure(this.#writeErrno));
  }

  // ---- readiness -----------------------------------------------------------------------------

  #setInterest(): void {
    if (this.#closed) return;
    const wantRead = this.#read !== undefined;
    const wantWrite = this.#writes.length > 0;
    const interest: WatchInterest = wantRead ? (wantWrite ? "rw" : "r") : wantWrite ? "w" : "";
    if (this.#watch === undefined) {
      if (interest === "") return;
      this.#watch = watch(this.fd, interest, (events) => this.#onReady(events));
      this.#interest = interest;
      return;
    }
    if (interest !== this.#interest || this.#pollErrno !== 0) {
      updateWatch(this.#watch, interest);
      this.#interest = interest;
    }
  }

  #onReady(events: WatchEvents): void {
    if (events.errno !== 0) {
      // libuv stopped the watch after an error: let the next syscall report what happened.
      this.#pollErrno = events.errno;
      this.#interest = "";
    }
    if (events.writable || events.errno !== 0) this.#pumpWrite();
    if (events.readable || events.errno !== 0) this.#pumpRead();
  }

  /** Lets the process exit while this socket waits (`ref = false`), like `net.Socket#unref`. */
  ref(ref = true): void {
    if (this.#watch !== undefined) refWatch(this.#watch, ref);
  }

  // ---- closing -------------------------------------------------------------------------------

  /**
   * Stops watching and closes the fd. A pending read resolves `{ kind: "closed" }`, pending
   * `drain()`s resolve with ECANCELED, queued writes are dropped. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watch !== undefined) unwatch(this.#watch);
    this.#watch = undefined;
    close(this.fd);
    const read = this.#read;
    this.#read = undefined;
    if (read !== undefined) {
      closeAll(read.fds);
      read.resolve({ kind: "closed" });
    }
    for (const w of this.#writes) closeAll(w.fds);
    this.#writes = [];
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const resolve of waiters) resolve(failure(ECANCELED));
  }
}

function failure(errno: number): DrainResult {
  return { ok: false, errno, code: errnoName(errno) };
}

/** Closes every fd in the list (received fds nobody will own). */
export function closeAll(fds: readonly number[]): void {
  for (const fd of fds) close(fd);
}
