/**
 * Typed entry to nvmig's native addon (`native/`, built by `npm install` through node-gyp): the
 * few Linux calls Node lacks for a vfio-user server — fd passing (SCM_RIGHTS) on AF_UNIX stream
 * sockets, memfd + mmap as an ArrayBuffer, eventfd, and readiness watches on Node's own event loop.
 * Everything is non-blocking and runs on the event-loop thread; there are no threads.
 *
 * Error rule of this boundary: a failure the caller must expect at run time is a value
 * (`recvmsg` → `{ bytes: -1, errno }`, `sendmsg` → `{ errno }`, `acceptUnix` → -1,
 * `eventfdRead` → -1, `eventfdWrite` → false); any other failed system call throws a
 * `NativeError` (errno name, number and syscall). A wrong argument (our own bug) throws the
 * addon's TypeError/RangeError.
 *
 * Ownership: every fd this module returns (created or received) belongs to the caller, who must
 * `close` it. All are close-on-exec; sockets and eventfds are non-blocking.
 */
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { fileURLToPath } from "node:url";

/** Name of an errno value as Node knows it ("EAGAIN", ...). */
export type ErrnoName = keyof typeof osConstants.errno;

/** Closed code set of `NativeError`. */
export type NativeErrorCode = ErrnoName | "EUNKNOWN" | "ADDON_NOT_BUILT" | "ADDON_LOAD_FAILED";

/** The one error type of the native boundary. */
export class NativeError extends Error {
  override readonly name = "NativeError";
  /** errno name, "EUNKNOWN" for a number Node has no name for, or an addon loading failure. */
  readonly code: NativeErrorCode;
  /** errno number (positive); 0 for addon loading failures. */
  readonly errno: number;
  /** The system call (or loading step) that failed. */
  readonly syscall: string;

  constructor(
    syscall: string,
    errno: number,
    options: { code?: NativeErrorCode; message?: string; cause?: unknown } = {},
  ) {
    const code = options.code ?? errnoName(errno);
    super(options.message ?? `${syscall} failed: ${code} (errno ${errno})`, { cause: options.cause });
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

const errnoNames = new Map<number, ErrnoName>();
for (const [name, value] of Object.entries(osConstants.errno)) {
  // Aliases share numbers (EWOULDBLOCK = EAGAIN): keep the first, canonical name.
  if (!errnoNames.has(value)) errnoNames.set(value, name as ErrnoName);
}

/** errno number → name ("EUNKNOWN" when Node has none). */
export function errnoName(errno: number): ErrnoName | "EUNKNOWN" {
  return errnoNames.get(errno) ?? "EUNKNOWN";
}

export const EAGAIN = osConstants.errno.EAGAIN;

/** Result of `recvmsg` when bytes arrived or the stream ended. */
export interface RecvmsgData {
  /** Bytes read, ≥ 1; 0 only with `eof`. */
  bytes: number;
  /** fds that arrived with these bytes (close-on-exec; the caller owns them). */
  fds: number[];
  /** The peer closed its end; no more bytes will come. */
  eof: boolean;
  /** The peer sent more fds than `maxFds`: the kernel closed the surplus. */
  ctrunc: boolean;
}

/** Result of `recvmsg` when nothing was read. */
export interface RecvmsgFailure {
  bytes: -1;
  /** EAGAIN when nothing is waiting; ECONNRESET etc. for a broken stream. */
  errno: number;
  fds: [];
  eof: false;
  ctrunc: false;
}

export type RecvmsgResult = RecvmsgData | RecvmsgFailure;

/** Readiness reported to a watch callback. */
export interface WatchEvents {
  readable: boolean;
  writable: boolean;
  /**
   * 0, or the errno libuv reported for the fd (e.g. EBADF after POLLERR). libuv then stops the
   * watch; `updateWatch` restarts it.
   */
  errno: number;
}

/** What a watch waits for: "r" readable, "w" writable, "rw" both, "" registered but paused. */
export type WatchInterest = "" | "r" | "w" | "rw";

/** Identifies a watch; stale handles are harmless (unwatch is idempotent). */
export type WatchHandle = number & { readonly __brand: "WatchHandle" };

/** Shape of the compiled binding (see native/src/*.cc for each function's contract). */
interface Binding {
  socketpair(): [number, number] | number;
  listenUnix(path: string, backlog: number): number;
  acceptUnix(fd: number): number;
  connectUnix(path: string): number;
  recvmsg(fd: number, buffer: Uint8Array, offset: number, length: number, maxFds: number): RecvmsgResult;
  sendmsg(fd: number, buffer: Uint8Array, offset: number, length: number, fds: readonly number[]): number;
  sendmsgv(fd: number, buffers: readonly Uint8Array[], fds: readonly number[]): number;
  maxFdsPerMessage: number;
  memfdCreate(name: string): number;
  ftruncate(fd: number, bytes: number): number;
  mmap(fd: number, lengthBytes: number, offsetBytes: number, writable: boolean): ArrayBuffer | number;
  munmap(buffer: ArrayBuffer): boolean;
  mmapStats(): { liveMappings: number; records: number };
  pageSize: number;
  maxMappingBytes: number;
  close(fd: number): number;
  dup(fd: number): number;
  setNonBlocking(fd: number, on: boolean): number;
  eventfd(initial: number, flags: number): number;
  eventfdWrite(fd: number, value: bigint): number;
  eventfdRead(fd: number): bigint | number;
  EFD_SEMAPHORE: number;
  watch(fd: number, events: number, callback: (events: number, status: number) => void): number;
  watchUpdate(id: number, events: number): number;
  watchRef(id: number, ref: boolean): number;
  unwatch(id: number): boolean;
  watchCount(): number;
  WATCH_READABLE: number;
  WATCH_WRITABLE: number;
}

/** Where `npm install` puts the compiled addon. */
export const addonPath = fileURLToPath(
  new URL("../../native/build/Release/nvmig_native.node", import.meta.url),
);

let loaded: Binding | undefined;

/** Loads the addon on first use; throws NativeError ADDON_NOT_BUILT / ADDON_LOAD_FAILED. */
export function loadAddon(): Binding {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require(addonPath) as Binding;
  } catch (cause) {
    const missing = (cause as { code?: unknown }).code === "MODULE_NOT_FOUND";
    throw new NativeError("dlopen", 0, {
      code: missing ? "ADDON_NOT_BUILT" : "ADDON_LOAD_FAILED",
      message: missing
        ? `nvmig native addon not found at ${addonPath}: run \`npm install\` (it builds native/ with node-gyp)`
        : `nvmig native addon at ${addonPath} failed to load: run \`npm install\` to rebuild it`,
      cause,
    });
  }
  return loaded;
}

const b = loadAddon;

/** Throws NativeError for a negative (-errno) result, else returns it. */
function check(syscall: string, result: number): number {
  if (result < 0) throw new NativeError(syscall, -result);
  return result;
}

/** System page size in bytes (mmap offsets must be multiples of it). */
export function pageSize(): number {
  return b().pageSize;
}

/** Most fds one message may carry (Linux SCM_MAX_FD, 253). */
export function maxFdsPerMessage(): number {
  return b().maxFdsPerMessage;
}

/** Largest mapping one ArrayBuffer can view (4 GiB on Node 20); map larger memory in windows. */
export function maxMappingBytes(): number {
  return b().maxMappingBytes;
}

// ---- sockets ---------------------------------------------------------------------------------

/** A connected pair of AF_UNIX stream sockets (close-on-exec, non-blocking). */
export function socketpair(): [number, number] {
  const pair = b().socketpair();
  if (typeof pair === "number") throw new NativeError("socketpair", -pair);
  return pair;
}

/**
 * A listening AF_UNIX stream socket bound to `path` (a leading "\0" names the abstract namespace).
 * An existing file at `path` is not removed: EADDRINUSE.
 * @param backlog pending-connection queue length; default 16, range 0..65535.
 */
export function listenUnix(path: string, backlog = 16): number {
  return check("listen", b().listenUnix(path, backlog));
}

/** Accepts one waiting connection: its fd, or -1 when none is waiting (EAGAIN) or it aborted. */
export function acceptUnix(listenFd: number): number {
  const fd = b().acceptUnix(listenFd);
  if (fd >= 0) return fd;
  const errno = -fd;
  if (errno === EAGAIN || errno === osConstants.errno.ECONNABORTED || errno === osConstants.errno.EPROTO) {
    return -1;
  }
  throw new NativeError("accept4", errno);
}

/** Connects to a listening AF_UNIX stream socket; the returned fd is non-blocking. */
export function connectUnix(path: string): number {
  return check("connect", b().connectUnix(path));
}

// ---- fd passing ------------------------------------------------------------------------------

/**
 * Reads up to `length` bytes into `buffer[offset..]` together with the fds that came with them
 * (at most `maxFds`, 0..253). Never blocks. Read a message's header first and then exactly its
 * payload, so the fds stay with the message they were sent with.
 */
export function recvmsg(
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  maxFds: number,
): RecvmsgResult {
  return b().recvmsg(fd, buffer, offset, length, maxFds);
}

/**
 * Sends `buffer[offset, offset+length)` with `fds` attached to its first byte (MSG_NOSIGNAL, never
 * blocks). Returns the bytes written — possibly fewer than `length`; the fds went with the first
 * byte — or `{ errno }` (EAGAIN: the socket buffer is full and nothing was sent; EPIPE: peer gone).
 * The caller keeps its own fds; the receiver gets copies.
 */
export function sendmsg(
  fd: number,
  buffer: Uint8Array,
  offset: number,
  length: number,
  fds: readonly number[] = [],
): number | { errno: number } {
  const n = b().sendmsg(fd, buffer, offset, length, fds);
  return n < 0 ? { errno: -n } : n;
}

/** `sendmsg` over several whole buffers at once (gather write; fds on the first byte). */
export function sendmsgv(
  fd: number,
  buffers: readonly Uint8Array[],
  fds: readonly number[] = [],
): number | { errno: number } {
  const n = b().sendmsgv(fd, buffers, fds);
  return n < 0 ? { errno: -n } : n;
}

// ---- memory ----------------------------------------------------------------------------------

/** An anonymous memory file (close-on-exec, sealing allowed), 0 bytes long until `ftruncate`. */
export function memfdCreate(name: string): number {
  return check("memfd_create", b().memfdCreate(name));
}

/** Sets the length of the file behind `fd` in bytes. */
export function ftruncate(fd: number, bytes: number): void {
  check("ftruncate", b().ftruncate(fd, bytes));
}

/**
 * Maps `[offsetBytes, offsetBytes+lengthBytes)` of `fd` shared (MAP_SHARED) as an ArrayBuffer.
 * `offsetBytes` must be a multiple of `pageSize()`; `lengthBytes` in 1..`maxMappingBytes()`.
 * The mapping ends with `munmap` or, failing that, when the ArrayBuffer is garbage-collected.
 * Touching bytes past the end of the file raises SIGBUS: size the file first.
 */
export function mmap(fd: number, lengthBytes: number, offsetBytes: number, writable: boolean): ArrayBuffer {
  const result = b().mmap(fd, lengthBytes, offsetBytes, writable);
  if (typeof result === "number") throw new NativeError("mmap", -result);
  return result;
}

/**
 * Ends a mapping made by `mmap` now and detaches its ArrayBuffer (byteLength becomes 0, every view
 * of it reads as empty). Idempotent: returns true if this call unmapped, false if it was already
 * unmapped (the GC finalizer then skips it, so an address reused by a later mapping is never
 * unmapped by mistake).
 */
export function munmap(buffer: ArrayBuffer): boolean {
  return b().munmap(buffer);
}

// ---- plain fds -------------------------------------------------------------------------------

/** Closes an fd. Closing an fd that is not open (EBADF) throws: it means a double close. */
export function close(fd: number): void {
  check("close", b().close(fd));
}

/** A close-on-exec copy of `fd`. */
export function dup(fd: number): number {
  return check("dup", b().dup(fd));
}

/** Turns O_NONBLOCK on or off (it is a property of the open file, shared by its dups). */
export function setNonBlocking(fd: number, on: boolean): void {
  check("fcntl", b().setNonBlocking(fd, on));
}

// ---- eventfd ---------------------------------------------------------------------------------

/** eventfd flag (Linux value): each read takes 1 from the counter instead of emptying it. */
export const EFD_SEMAPHORE = 1;

/**
 * A non-blocking, close-on-exec eventfd.
 * @param initial start value of the counter; default 0, range 0..2^32-1.
 * @param flags 0 (default) or `EFD_SEMAPHORE`.
 */
export function eventfd(initial = 0, flags = 0): number {
  return check("eventfd", b().eventfd(initial, flags));
}

/**
 * Adds `value` (default 1, range 1..2^64-2) to the counter — signals the eventfd. Returns false if
 * the counter would overflow (EAGAIN on a non-blocking eventfd).
 */
export function eventfdWrite(fd: number, value: bigint | number = 1n): boolean {
  const rc = b().eventfdWrite(fd, BigInt(value));
  if (rc === -EAGAIN) return false;
  check("write", rc);
  return true;
}

/**
 * Takes the counter (resetting it to 0; in semaphore mode takes 1): the value, or -1 when it is 0
 * (EAGAIN). Only for non-blocking eventfds (a blocking one would stall the event loop).
 */
export function eventfdRead(fd: number): bigint | -1 {
  const value = b().eventfdRead(fd);
  if (typeof value === "bigint") return value;
  if (value === -EAGAIN) return -1;
  throw new NativeError("read", -value);
}

// ---- readiness watches -----------------------------------------------------------------------

function interestMask(events: WatchInterest): number {
  const binding = b();
  switch (events) {
    case "":
      return 0;
    case "r":
      return binding.WATCH_READABLE;
    case "w":
      return binding.WATCH_WRITABLE;
    case "rw":
      return binding.WATCH_READABLE | binding.WATCH_WRITABLE;
  }
}

/**
 * Calls `callback` from Node's event loop whenever `fd` is ready for `events` (level-triggered:
 * again on every loop turn while the condition holds, so read until EAGAIN or pause the watch).
 * One watch per fd; `unwatch` before closing the fd. A callback that throws raises
 * 'uncaughtException' like any event handler.
 */
export function watch(
  fd: number,
  events: WatchInterest,
  callback: (events: WatchEvents) => void,
): WatchHandle {
  const binding = b();
  const readable = binding.WATCH_READABLE;
  const writable = binding.WATCH_WRITABLE;
  const id = binding.watch(fd, interestMask(events), (mask, status) => {
    callback({
      readable: (mask & readable) !== 0,
      writable: (mask & writable) !== 0,
      errno: status === 0 ? 0 : -status,
    });
  });
  return check("uv_poll_start", id) as WatchHandle;
}

/** Changes what a watch waits for ("" pauses it). Returns false if the watch is gone. */
export function updateWatch(handle: WatchHandle, events: WatchInterest): boolean {
  const rc = b().watchUpdate(handle, interestMask(events));
  if (rc === -osConstants.errno.ENOENT) return false;
  check("uv_poll_start", rc);
  return true;
}

/** `ref = false` lets the process exit while the watch is active (like `socket.unref()`). */
export function refWatch(handle: WatchHandle, ref: boolean): boolean {
  return b().watchRef(handle, ref) === 0;
}

/** Ends a watch (safe inside its own callback). Returns false if it was already ended. */
export function unwatch(handle: WatchHandle): boolean {
  return b().unwatch(handle);
}

/** Counters for leak tests: live mappings, mapping records not yet finalized, open watches. */
export function nativeStats(): { liveMappings: number; mappingRecords: number; watches: number } {
  const mm = b().mmapStats();
  return { liveMappings: mm.liveMappings, mappingRecords: mm.records, watches: b().watchCount() };
}
