/**
 * Internal (not API): option and range checks shared by the BlockStore implementations.
 */
import { StorageError } from "./storage-error.ts";

/** Logical block sizes a store accepts (bytes). */
export const LBA_BYTES_CHOICES = [512, 4096] as const;
export type LbaBytes = (typeof LBA_BYTES_CHOICES)[number];

/** Checks `lbaBytes` and `lbaCount`; returns the capacity in bytes. Throws `open-failed` when invalid. */
export function capacityBytesOf(lbaBytes: number, lbaCount: number): number {
  if (lbaBytes !== 512 && lbaBytes !== 4096) {
    throw new StorageError("open-failed", `lbaBytes must be 512 or 4096, got ${lbaBytes}`);
  }
  if (!Number.isSafeInteger(lbaCount) || lbaCount < 1) {
    throw new StorageError("open-failed", `lbaCount must be a positive integer, got ${lbaCount}`);
  }
  const capacityBytes = lbaBytes * lbaCount;
  if (!Number.isSafeInteger(capacityBytes)) {
    throw new StorageError("open-failed", `capacity ${lbaBytes} × ${lbaCount} bytes is beyond 2^53`);
  }
  return capacityBytes;
}

/** Throws `out-of-range` unless `[offsetBytes, offsetBytes + lengthBytes)` lies inside the capacity. */
export function checkRange(offsetBytes: number, lengthBytes: number, capacityBytes: number): void {
  if (
    !Number.isSafeInteger(offsetBytes) ||
    !Number.isSafeInteger(lengthBytes) ||
    offsetBytes < 0 ||
    lengthBytes < 0 ||
    offsetBytes + lengthBytes > capacityBytes
  ) {
    throw new StorageError(
      "out-of-range",
      `bytes [${offsetBytes}, +${lengthBytes}) outside the store's ${capacityBytes} bytes`,
    );
  }
}
