/**
 * File BlockStore: positional I/O (`fs.readSync` / `fs.writeSync` with a position) on a sparse file of
 * exactly `lbaBytes × lbaCount` bytes. A new file is sized with `ftruncate` and never pre-allocated, so
 * it occupies disk only where written. Reads and writes return once the data is in the OS page cache;
 * `flush()` (`fsync`) makes it durable.
 *
 * Deallocate / Write Zeroes: Node has no `fallocate(FALLOC_FL_PUNCH_HOLE)` and this layer uses no
 * native code, so holes are never punched. Instead the range is read in 64 KiB pieces and only pieces
 * that hold a non-zero byte are overwritten with zeroes: zeroing space that was never written (or was
 * already zero) allocates nothing on disk, but space the guest frees is not returned to the host file
 * system. (A native `fallocate` in `src/native/` could add hole punching later.)
 */
import fs from "node:fs";
import type { BlockStore } from "./block-store.ts";
import { capacityBytesOf, checkRange, type LbaBytes } from "./geometry.ts";
import { StorageError } from "./storage-error.ts";

export interface FileBlockStoreOptions {
  /** Path of the backing file. */
  path: string;
  /** Logical block size in bytes: 512 or 4096. */
  lbaBytes: LbaBytes;
  /** Number of logical blocks; the file is exactly `lbaBytes × lbaCount` bytes. */
  lbaCount: number;
  /**
   * Default false: the file must exist with exactly the expected size. When true, a missing file is
   * created (mode 0600) and a zero-length file is sized with `ftruncate`; an existing file of the
   * expected size is opened as is; any other size is still `size-mismatch`.
   */
  create?: boolean;
}

export interface FileBlockStore extends BlockStore {
  readonly path: string;
}

/** Piece size used by Write Zeroes / Deallocate (bytes). */
const ZERO_PIECE_BYTES = 64 * 1024;
const ZEROES = Buffer.alloc(ZERO_PIECE_BYTES);

/** Opens (or creates) the backing file. Throws `StorageError` (`open-failed`, `size-mismatch`). */
export function openFileBlockStore(options: FileBlockStoreOptions): FileBlockStore {
  const capacityBytes = capacityBytesOf(options.lbaBytes, options.lbaCount);
  const flags = fs.constants.O_RDWR | (options.create === true ? fs.constants.O_CREAT : 0);
  let fd: number;
  try {
    fd = fs.openSync(options.path, flags, 0o600);
  } catch (cause) {
    throw new StorageError("open-failed", `cannot open ${options.path}`, { cause });
  }
  try {
    const sizeBytes = fs.fstatSync(fd).size;
    if (sizeBytes === 0 && options.create === true) {
      fs.ftruncateSync(fd, capacityBytes);
    } else if (sizeBytes !== capacityBytes) {
      throw new StorageError(
        "size-mismatch",
        `${options.path} is ${sizeBytes} bytes, expected ${capacityBytes} (${options.lbaCount} × ${options.lbaBytes})`,
      );
    }
  } catch (cause) {
    fs.closeSync(fd);
    if (cause instanceof StorageError) throw cause;
    throw new StorageError("open-failed", `cannot size ${options.path}`, { cause });
  }
  return new FileStore(options.path, fd, options.lbaBytes, options.lbaCount, capacityBytes);
}

class FileStore implements FileBlockStore {
  private closed = false;
  private fdClosed = false;
  private flushesInFlight = 0;
  private scratch: Buffer | undefined;

  constructor(
    readonly path: string,
    private readonly fd: number,
    readonly lbaBytes: number,
    readonly lbaCount: number,
    private readonly capacityBytes: number,
  ) {}

  read(offsetBytes: number, dst: Uint8Array): void {
    this.check(offsetBytes, dst.byteLength);
    this.readAt(offsetBytes, dst, dst.byteLength);
  }

  write(offsetBytes: number, src: Uint8Array): void {
    this.check(offsetBytes, src.byteLength);
    this.writeAt(offsetBytes, src, src.byteLength);
  }

  writeZeroes(offsetBytes: number, lengthBytes: number): void {
    this.zero(offsetBytes, lengthBytes);
  }

  deallocate(offsetBytes: number, lengthBytes: number): void {
    this.zero(offsetBytes, lengthBytes);
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError("closed", `flush of ${this.path} after close`));
    this.flushesInFlight++;
    return new Promise<void>((resolve, reject) => {
      fs.fsync(this.fd, (err) => {
        this.flushesInFlight--;
        if (err) {
          reject(new StorageError("io-failed", `fsync of ${this.path} failed`, { cause: err }));
        }
        // close() during an fsync defers the close of the descriptor until here.
        if (this.closed && this.flushesInFlight === 0) {
          try {
            this.closeFd();
          } catch (closeError) {
            reject(closeError);
          }
        }
        resolve();
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.scratch = undefined;
    if (this.flushesInFlight === 0) this.closeFd();
  }

  private closeFd(): void {
    if (this.fdClosed) return;
    this.fdClosed = true;
    try {
      fs.closeSync(this.fd);
    } catch (cause) {
      throw new StorageError("io-failed", `close of ${this.path} failed`, { cause });
    }
  }

  /** Overwrites with zeroes only the pieces that are not already zero (keeps holes holes). */
  private zero(offsetBytes: number, lengthBytes: number): void {
    this.check(offsetBytes, lengthBytes);
    this.scratch ??= Buffer.allocUnsafe(ZERO_PIECE_BYTES);
    const scratch = this.scratch;
    const end = offsetBytes + lengthBytes;
    let pos = offsetBytes;
    while (pos < end) {
      const n = Math.min(ZERO_PIECE_BYTES, end - pos);
      this.readAt(pos, scratch, n);
      const isZero =
        n === ZERO_PIECE_BYTES
          ? scratch.equals(ZEROES)
          : scratch.subarray(0, n).equals(ZEROES.subarray(0, n));
      if (!isZero) this.writeAt(pos, ZEROES, n);
      pos += n;
    }
  }

  private readAt(positionBytes: number, dst: Uint8Array, lengthBytes: number): void {
    let done = 0;
    try {
      while (done < lengthBytes) {
        const n = fs.readSync(this.fd, dst, done, lengthBytes - done, positionBytes + done);
        if (n === 0) break;
        done += n;
      }
    } catch (cause) {
      throw new StorageError("io-failed", `read of ${this.path} at ${positionBytes + done} failed`, {
        cause,
      });
    }
    if (done < lengthBytes) {
      throw new StorageError(
        "io-failed",
        `short read of ${this.path} at ${positionBytes + done}: file shrank?`,
      );
    }
  }

  private writeAt(positionBytes: number, src: Uint8Array, lengthBytes: number): void {
    let done = 0;
    try {
      while (done < lengthBytes) {
        done += fs.writeSync(this.fd, src, done, lengthBytes - done, positionBytes + done);
      }
    } catch (cause) {
      throw new StorageError("io-failed", `write of ${this.path} at ${positionBytes + done} failed`, {
        cause,
      });
    }
  }

  private check(offsetBytes: number, lengthBytes: number): void {
    if (this.closed) throw new StorageError("closed", `${this.path} used after close`);
    checkRange(offsetBytes, lengthBytes, this.capacityBytes);
  }
}
