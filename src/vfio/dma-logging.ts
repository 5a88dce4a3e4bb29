/**
 * DMA logging rules of the VFIO uAPI (DMA_LOGGING_START / REPORT validation, bitmap shape), as pure
 * functions the portal applies before the driver sees a request.
 *
 * START: num_ranges 0 → EINVAL; > 256 → E2BIG; page_size a power of two; each range's iova and length
 * multiples of page_size and length > 0 → else EINVAL; iova + length beyond u64 → EOVERFLOW; ranges
 * overlapping each other → EINVAL. Checked in list order; the first failing range decides.
 * REPORT: page_size a power of two ≥ 4096 → else EINVAL; length > 0 → else EINVAL; iova + length beyond
 * u64 → EOVERFLOW. Bitmap: bit n ↔ page `[iova + n·page_size, iova + (n+1)·page_size)`, packed into
 * little-endian u64 words (bit n of word n/64); only ever OR-ed into the caller's bitmap.
 */
import type { DmaRange } from "./backend.ts";
import { Errno } from "./states.ts";

/** Most ranges a START may carry (`PAGE_SIZE / sizeof(range)` on 4 KiB pages). */
export const DMA_LOGGING_MAX_RANGES = 256;
/** Smallest REPORT page size, bytes. */
export const DMA_LOGGING_MIN_REPORT_PAGE_BYTES = 4096n;
/**
 * Largest bitmap the portal builds for one REPORT, bytes (64 MiB ↔ 2 TiB at 4 KiB pages). Larger
 * requests are refused with ENOMEM; callers split the range.
 */
export const DMA_LOGGING_MAX_BITMAP_BYTES = 64 * 1024 * 1024;

const U64_MAX = (1n << 64n) - 1n;

/** True if `x` is a u64 value. */
export function isU64(x: bigint): boolean {
  return x >= 0n && x <= U64_MAX;
}

/** True if `x` is a power of two (and a u64). */
export function isPowerOfTwo(x: bigint): boolean {
  return x > 0n && x <= U64_MAX && (x & (x - 1n)) === 0n;
}

/** 0 if the START request is valid, else the errno. */
export function validateLoggingStart(ranges: readonly DmaRange[], pageSize: bigint): number {
  if (ranges.length === 0) return Errno.EINVAL;
  if (ranges.length > DMA_LOGGING_MAX_RANGES) return Errno.E2BIG;
  if (!isPowerOfTwo(pageSize)) return Errno.EINVAL;
  const mask = pageSize - 1n;
  const accepted: DmaRange[] = [];
  for (const r of ranges) {
    if (!isU64(r.iova) || !isU64(r.length)) return Errno.EINVAL;
    if ((r.iova & mask) !== 0n || (r.length & mask) !== 0n || r.length === 0n) return Errno.EINVAL;
    if (r.iova + r.length > U64_MAX) return Errno.EOVERFLOW;
    for (const a of accepted) {
      if (r.iova < a.iova + a.length && a.iova < r.iova + r.length) return Errno.EINVAL;
    }
    accepted.push(r);
  }
  return 0;
}

/** 0 if the REPORT request is valid, else the errno. */
export function validateLoggingReport(iova: bigint, length: bigint, pageSize: bigint): number {
  if (!isPowerOfTwo(pageSize) || pageSize < DMA_LOGGING_MIN_REPORT_PAGE_BYTES) return Errno.EINVAL;
  if (!isU64(iova) || !isU64(length) || length === 0n) return Errno.EINVAL;
  if (iova + length > U64_MAX) return Errno.EOVERFLOW;
  return 0;
}

/** Number of bits (pages) a REPORT bitmap for `length` bytes at `pageSize` carries. */
export function dmaBitmapBits(length: bigint, pageSize: bigint): bigint {
  return (length + pageSize - 1n) / pageSize;
}

/** Bytes of a REPORT bitmap: whole u64 words. */
export function dmaBitmapBytes(length: bigint, pageSize: bigint): bigint {
  return ((dmaBitmapBits(length, pageSize) + 63n) / 64n) * 8n;
}

/** ORs `src` into `dst` (same length or `dst` longer): the kernel never clears a bit in the caller's bitmap. */
export function orInto(dst: Uint8Array, src: Uint8Array): void {
  for (let i = 0; i < src.length; i++) dst[i]! |= src[i]!;
}
