/**
 * `UnixListener`: a listening AF_UNIX stream socket whose connections come out as `FdSocket`s,
 * driven by a readiness watch on Node's event loop. (Node's `net.Server` cannot be used for the
 * connections themselves: libuv reads them without a control buffer, so the kernel drops every
 * fd a peer sends.)
 */
import { rmSync } from "node:fs";
import { acceptUnix, close, listenUnix, unwatch, updateWatch, type WatchHandle, watch } from "./addon.ts";
import { FdSocket, type FdSocketOptions } from "./unix-socket.ts";

export interface UnixListenerOptions extends FdSocketOptions {
  /** Pending-connection queue length; default 16, range 0..65535. */
  backlog?: number;
  /** Remove a stale file at `path` before binding; default false (then EADDRINUSE is thrown). */
  replaceExisting?: boolean;
}

export class UnixListener {
  /** Filesystem path of the socket (removed by `close()`). */
  readonly path: string;
  /** The listening fd; owned by this object. */
  readonly fd: number;
  readonly #socketOptions: FdSocketOptions;
  readonly #watch: WatchHandle;
  #waiters: Array<(socket: FdSocket | null) => void> = [];
  #closed = false;

  private constructor(path: string, fd: number, socketOptions: FdSocketOptions) {
    this.path = path;
    this.fd = fd;
    this.#socketOptions = socketOptions;
    this.#watch = watch(fd, "", () => this.#pump());
  }

  /** Binds and listens at `path`. */
  static listen(path: string, options: UnixListenerOptions = {}): UnixListener {
    if (options.replaceExisting === true) rmSync(path, { force: true });
    const fd = listenUnix(path, options.backlog ?? 16);
    const socketOptions: FdSocketOptions = {};
    if (options.maxFdsPerRead !== undefined) socketOptions.maxFdsPerRead = options.maxFdsPerRead;
    return new UnixListener(path, fd, socketOptions);
  }

  /** The next connection, or null once the listener is closed. Calls queue up in order. */
  accept(): Promise<FdSocket | null> {
    if (this.#closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#waiters.length > 0) {
      const fd = acceptUnix(this.fd);
      if (fd < 0) {
        updateWatch(this.#watch, "r");
        return;
      }
      this.#waiters.shift()!(new FdSocket(fd, this.#socketOptions));
    }
    updateWatch(this.#watch, "");
  }

  /** Stops listening, removes the socket file; pending `accept()`s resolve null. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unwatch(this.#watch);
    close(this.fd);
    rmSync(this.path, { force: true });
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve(null);
  }
}
