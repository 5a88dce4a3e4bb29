/**
 * The storage seam: a namespace's blocks, addressed in bytes. Implementations: memory (sparse chunks)
 * and file (positional I/O on a sparse file). Synchronous so the I/O fast path needs no promise per
 * command; a method returns only after the data is in the store (for the file backend: in the OS page
 * cache; `flush()` makes it durable).
 */
export interface BlockStore {
  /** Logical block size in bytes: 512 or 4096. */
  readonly lbaBytes: number;
  /** Number of logical blocks. */
  readonly lbaCount: number;
  /** Copies `dst.byteLength` bytes starting at byte `offsetBytes` into `dst`. Unwritten bytes read as 0. */
  read(offsetBytes: number, dst: Uint8Array): void;
  /**
   * Optional: `read` into `dst[dstOffset .. dstOffset + lengthBytes)` without the caller making a
   * view of `dst` first (the controller's Read hot path uses it when present, `read` otherwise).
   * `dstOffset + lengthBytes` must not exceed `dst.byteLength` (RangeError).
   */
  readInto?(offsetBytes: number, dst: Uint8Array, dstOffset: number, lengthBytes: number): void;
  /** Stores `src` at byte `offsetBytes`. */
  write(offsetBytes: number, src: Uint8Array): void;
  /** Zeroes `lengthBytes` starting at `offsetBytes` (Write Zeroes; may deallocate). */
  writeZeroes(offsetBytes: number, lengthBytes: number): void;
  /** Deallocates the range (Dataset Management); later reads return zeroes. */
  deallocate(offsetBytes: number, lengthBytes: number): void;
  /** Makes every completed write durable (fsync for the file backend; a no-op in memory). */
  flush(): Promise<void>;
  /** Releases resources (closes the file). Idempotent. */
  close(): void;
}
