/**
 * The one error type of the storage boundary. `code` is a closed set; the OS error (if any) is `cause`.
 *
 * - `open-failed`   the backing store could not be opened/created, or the options are invalid.
 * - `size-mismatch` an existing file's size differs from `lbaBytes × lbaCount`.
 * - `io-failed`     a read/write/fsync/close of the backing file failed.
 * - `closed`        the store was used after `close()`.
 * - `out-of-range`  an access outside `[0, lbaBytes × lbaCount)`. The controller validates LBA ranges
 *                   first, so this is a bug guard, not a guest-visible condition.
 */
export type StorageErrorCode = "open-failed" | "size-mismatch" | "io-failed" | "closed" | "out-of-range";

export class StorageError extends Error {
  override readonly name = "StorageError";
  readonly code: StorageErrorCode;

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(`${code}: ${message}`, options);
    this.code = code;
  }

  /** True if `e` is a StorageError (optionally with the given code). */
  static is(e: unknown, code?: StorageErrorCode): e is StorageError {
    return e instanceof StorageError && (code === undefined || e.code === code);
  }
}
