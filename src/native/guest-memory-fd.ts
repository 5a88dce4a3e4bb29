/**
 * Shared memory backed by a memfd: guest RAM of the VMM side, BAR backing files of the device
 * side, and received DMA fds mapped by the server.
 *
 * `GuestMemoryFd.create` makes a memfd of N bytes and maps it writable; the fd can be sent to a
 * peer (sendmsg) which then sees the same bytes. `mapFdRange` maps any byte range of a received
 * fd, aligning the start down to a page as mmap requires.
 */
import { close, ftruncate, memfdCreate, mmap, munmap, pageSize } from "./addon.ts";

export class GuestMemoryFd {
  /** The memfd; owned by this object until `close()`. */
  readonly fd: number;
  /** Length of the file and of the mapping, in bytes. */
  readonly sizeBytes: number;
  #buffer: ArrayBuffer;
  #closed = false;

  private constructor(fd: number, sizeBytes: number, buffer: ArrayBuffer) {
    this.fd = fd;
    this.sizeBytes = sizeBytes;
    this.#buffer = buffer;
  }

  /**
   * A new memfd of `sizeBytes` bytes (zero-filled), mapped read-write.
   * @param name shows in /proc/PID/fd and /proc/PID/maps ("memfd:NAME"); no uniqueness needed.
   * @param sizeBytes 1..maxMappingBytes() (4 GiB on Node 20).
   */
  static create(name: string, sizeBytes: number): GuestMemoryFd {
    const fd = memfdCreate(name);
    try {
      ftruncate(fd, sizeBytes);
      return new GuestMemoryFd(fd, sizeBytes, mmap(fd, sizeBytes, 0, true));
    } catch (error) {
      close(fd);
      throw error;
    }
  }

  /** The whole mapping (detached, 0 bytes, after `close()`). */
  get buffer(): ArrayBuffer {
    return this.#buffer;
  }

  /** A fresh byte view of the whole mapping. */
  bytes(): Uint8Array {
    return new Uint8Array(this.#buffer);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Unmaps (every view goes empty) and closes the fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    munmap(this.#buffer);
    close(this.fd);
  }
}

/** A mapped byte range of some fd. */
export interface MappedRange {
  /** Exactly the requested bytes. */
  readonly bytes: Uint8Array;
  /** The whole mapping (starts at the page boundary at or below the requested offset). */
  readonly buffer: ArrayBuffer;
  /** Ends the mapping; every view goes empty. Idempotent; does not close the fd. */
  unmap(): void;
}

/**
 * Maps `[offsetBytes, offsetBytes + lengthBytes)` of `fd` (MAP_SHARED). The offset need not be
 * page-aligned: the mapping starts at the page below it and `bytes` views the requested range.
 * The fd stays open and owned by the caller (the mapping survives closing it).
 */
export function mapFdRange(
  fd: number,
  offsetBytes: number,
  lengthBytes: number,
  writable: boolean,
): MappedRange {
  const page = pageSize();
  const start = offsetBytes - (offsetBytes % page);
  const lead = offsetBytes - start;
  const buffer = mmap(fd, lead + lengthBytes, start, writable);
  return {
    bytes: new Uint8Array(buffer, lead, lengthBytes),
    buffer,
    unmap: () => {
      munmap(buffer);
    },
  };
}
