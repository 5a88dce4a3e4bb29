/**
 * In-memory BlockStore: sparse and chunked. A chunk (`chunkBytes`, 1 MiB by default) is allocated on the
 * first write that touches it; reads of unallocated chunks return zeroes; Write Zeroes / Deallocate free
 * every chunk they cover wholly and zero the partial ends in place. A 64 GiB namespace therefore costs
 * one empty Map until written.
 *
 * Hot path: an access inside one chunk is one `Uint8Array.set` (or `fill`); a crossing access is two.
 * No buffer is allocated per access (a read makes one `subarray` view of the chunk; `readInto` lets
 * the caller skip making a view of its destination).
 */
import type { BlockStore } from "./block-store.ts";
import { capacityBytesOf, checkRange, type LbaBytes } from "./geometry.ts";
import { StorageError } from "./storage-error.ts";

export interface MemoryBlockStoreOptions {
  /** Logical block size in bytes: 512 or 4096. */
  lbaBytes: LbaBytes;
  /** Number of logical blocks; `lbaBytes × lbaCount` must not exceed 2^53 bytes. */
  lbaCount: number;
  /**
   * Allocation unit in bytes. Default 1 MiB (1048576); a power of two from 4 KiB (4096) to 64 MiB.
   */
  chunkBytes?: number;
}

/** A memory store, with figures for tests and metrics. */
export interface MemoryBlockStore extends BlockStore {
  readInto(offsetBytes: number, dst: Uint8Array, dstOffset: number, lengthBytes: number): void;
  readonly chunkBytes: number;
  /** Number of chunks currently allocated. */
  allocatedChunkCount(): number;
  /** Bytes currently allocated for data. */
  allocatedBytes(): number;
}

export const DEFAULT_MEMORY_CHUNK_BYTES = 1 << 20;
const MIN_CHUNK_BYTES = 4096;
const MAX_CHUNK_BYTES = 64 << 20;

export function createMemoryBlockStore(options: MemoryBlockStoreOptions): MemoryBlockStore {
  const capacityBytes = capacityBytesOf(options.lbaBytes, options.lbaCount);
  const chunkBytes = options.chunkBytes ?? DEFAULT_MEMORY_CHUNK_BYTES;
  if (
    !Number.isInteger(chunkBytes) ||
    chunkBytes < MIN_CHUNK_BYTES ||
    chunkBytes > MAX_CHUNK_BYTES ||
    (chunkBytes & (chunkBytes - 1)) !== 0
  ) {
    throw new StorageError(
      "open-failed",
      `chunkBytes must be a power of two in [4096, 64 MiB], got ${chunkBytes}`,
    );
  }
  return new MemoryStore(options.lbaBytes, options.lbaCount, capacityBytes, chunkBytes);
}

class MemoryStore implements MemoryBlockStore {
  private readonly chunks = new Map<number, Uint8Array>();
  private closed = false;
  private allocated = 0;

  constructor(
    readonly lbaBytes: number,
    readonly lbaCount: number,
    private readonly capacityBytes: number,
    readonly chunkBytes: number,
  ) {}

  read(offsetBytes: number, dst: Uint8Array): void {
    this.readInto(offsetBytes, dst, 0, dst.byteLength);
  }

  readInto(offsetBytes: number, dst: Uint8Array, dstOffset: number, lengthBytes: number): void {
    this.check(offsetBytes, lengthBytes);
    if (!(dstOffset >= 0 && dstOffset + lengthBytes <= dst.byteLength)) {
      throw new RangeError(`readInto: [${dstOffset}, +${lengthBytes}) outside a ${dst.byteLength}-byte dst`);
    }
    const cb = this.chunkBytes;
    const end = dstOffset + lengthBytes;
    let done = dstOffset;
    let pos = offsetBytes;
    while (done < end) {
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(end - done, cb - inChunk);
      const chunk = this.chunks.get(index);
      if (chunk === undefined) dst.fill(0, done, done + n);
      else dst.set(chunk.subarray(inChunk, inChunk + n), done);
      done += n;
      pos += n;
    }
  }

  write(offsetBytes: number, src: Uint8Array): void {
    this.check(offsetBytes, src.byteLength);
    const cb = this.chunkBytes;
    const len = src.byteLength;
    let done = 0;
    let pos = offsetBytes;
    while (done < len) {
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const n = Math.min(len - done, cb - inChunk);
      let chunk = this.chunks.get(index);
      if (chunk === undefined) {
        chunk = new Uint8Array(this.chunkSize(index));
        this.chunks.set(index, chunk);
        this.allocated += chunk.byteLength;
      }
      chunk.set(n === len ? src : src.subarray(done, done + n), inChunk);
      done += n;
      pos += n;
    }
  }

  writeZeroes(offsetBytes: number, lengthBytes: number): void {
    this.zero(offsetBytes, lengthBytes);
  }

  deallocate(offsetBytes: number, lengthBytes: number): void {
    this.zero(offsetBytes, lengthBytes);
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError("closed", "flush after close"));
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
    this.chunks.clear();
    this.allocated = 0;
  }

  allocatedChunkCount(): number {
    return this.chunks.size;
  }

  allocatedBytes(): number {
    return this.allocated;
  }

  /** Frees wholly covered chunks, zeroes the partial ends of allocated ones. */
  private zero(offsetBytes: number, lengthBytes: number): void {
    this.check(offsetBytes, lengthBytes);
    const cb = this.chunkBytes;
    const end = offsetBytes + lengthBytes;
    let pos = offsetBytes;
    while (pos < end) {
      const index = Math.floor(pos / cb);
      const inChunk = pos - index * cb;
      const size = this.chunkSize(index);
      const n = Math.min(end - pos, size - inChunk);
      const chunk = this.chunks.get(index);
      if (chunk !== undefined) {
        if (inChunk === 0 && n === size) {
          this.chunks.delete(index);
          this.allocated -= size;
        } else {
          chunk.fill(0, inChunk, inChunk + n);
        }
      }
      pos += n;
    }
  }

  /** The last chunk is shorter when the capacity is not a multiple of `chunkBytes`. */
  private chunkSize(index: number): number {
    return Math.min(this.chunkBytes, this.capacityBytes - index * this.chunkBytes);
  }

  private check(offsetBytes: number, lengthBytes: number): void {
    if (this.closed) throw new StorageError("closed", "memory store used after close");
    checkRange(offsetBytes, lengthBytes, this.capacityBytes);
  }
}
