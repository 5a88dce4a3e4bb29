/** Codes of `GuestMemoryError`: all are bugs or configuration errors of the guest-side code. */
export type GuestMemoryErrorCode =
  /** A size, count or option out of range. */
  | "invalid-argument"
  /** An access outside guest RAM. */
  | "out-of-bounds"
  /** The allocator has no contiguous run that large. */
  | "out-of-memory"
  /** `free` of an address that is not a live allocation. */
  | "double-free";

/** The one error type of guest RAM. */
export class GuestMemoryError extends Error {
  override readonly name = "GuestMemoryError";
  constructor(
    readonly code: GuestMemoryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
