/**
 * Validation of request fields that the transport can judge without the device (ranges, alignment,
 * sizes). Each check throws ControlError `invalid-argument` naming the field; the backend is not
 * called. Internal to src/control — not API.
 */
import type { LbaRange, MemoryRange } from "./backend.ts";
import { ControlError } from "./errors.ts";
import { MAX_CNTLID, MAX_DIRTY_BITMAP_BYTES, MIN_DIRTY_PAGE_BYTES } from "./limits.ts";

const U64_LIMIT = 1n << 64n;

/** Most ranges accepted in one request (dirty tracking, namespace reads). */
export const MAX_RANGES = 4096;

/** Longest free-text field (lease description), characters. */
export const MAX_DESCRIPTION_CHARS = 256;

function invalid(message: string): never {
  throw new ControlError("invalid-argument", message);
}

export function checkCntlid(cntlid: number): number {
  if (!Number.isInteger(cntlid) || cntlid < 0 || cntlid > MAX_CNTLID) {
    invalid(`cntlid ${cntlid} outside 0..0x${MAX_CNTLID.toString(16)}`);
  }
  return cntlid;
}

/** An 8-bit command field (CSVI, CSUUIDI). */
export function checkU8(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) invalid(`${field} ${value} outside 0..255`);
  return value;
}

/** A namespace id usable for data transfer: 1..0xFFFFFFFE. */
export function checkNsid(nsid: number): number {
  if (!Number.isInteger(nsid) || nsid < 1 || nsid > 0xfffffffe) invalid(`nsid ${nsid} outside 1..0xfffffffe`);
  return nsid;
}

export function checkDescription(text: string): string {
  if (text.length > MAX_DESCRIPTION_CHARS)
    invalid(`description longer than ${MAX_DESCRIPTION_CHARS} characters`);
  return text;
}

/** Dirty-tracking page size: a power of two >= 4096 and <= 1 GiB. */
export function checkPageSize(pageSizeBytes: bigint): bigint {
  const ok =
    pageSizeBytes >= MIN_DIRTY_PAGE_BYTES &&
    pageSizeBytes <= 1n << 30n &&
    (pageSizeBytes & (pageSizeBytes - 1n)) === 0n;
  if (!ok) invalid(`page_size_bytes ${pageSizeBytes} is not a power of two in 4096..1073741824`);
  return pageSizeBytes;
}

/** Tracking ranges: 1..MAX_RANGES, each non-empty, page aligned, inside 2^64, no two overlapping. */
export function checkMemoryRanges(ranges: readonly MemoryRange[], pageSizeBytes: bigint): MemoryRange[] {
  if (ranges.length === 0 || ranges.length > MAX_RANGES)
    invalid(`ranges: need 1..${MAX_RANGES}, got ${ranges.length}`);
  const sorted = [...ranges].sort((a, b) => (a.iova < b.iova ? -1 : a.iova > b.iova ? 1 : 0));
  let previousEnd = 0n;
  for (const [i, r] of sorted.entries()) {
    if (r.lengthBytes === 0n) invalid(`range at iova 0x${r.iova.toString(16)} is empty`);
    if (r.iova % pageSizeBytes !== 0n || r.lengthBytes % pageSizeBytes !== 0n) {
      invalid(`range at iova 0x${r.iova.toString(16)} is not aligned to ${pageSizeBytes}`);
    }
    if (r.iova + r.lengthBytes > U64_LIMIT) invalid(`range at iova 0x${r.iova.toString(16)} wraps past 2^64`);
    if (i > 0 && r.iova < previousEnd) invalid(`ranges overlap at iova 0x${r.iova.toString(16)}`);
    previousEnd = r.iova + r.lengthBytes;
  }
  return ranges.map((r) => ({ iova: r.iova, lengthBytes: r.lengthBytes }));
}

/** One ReportDirtyPages range; returns the page count (1..MAX_DIRTY_BITMAP_BYTES × 8). */
export function checkDirtyReport(iova: bigint, lengthBytes: bigint, pageSizeBytes: bigint): number {
  checkPageSize(pageSizeBytes);
  if (iova % pageSizeBytes !== 0n || lengthBytes % pageSizeBytes !== 0n) {
    invalid(`iova/length_bytes not aligned to page_size_bytes ${pageSizeBytes}`);
  }
  if (iova + lengthBytes > U64_LIMIT) invalid("range wraps past 2^64");
  const pages = lengthBytes / pageSizeBytes;
  const maxPages = BigInt(MAX_DIRTY_BITMAP_BYTES * 8);
  if (pages < 1n || pages > maxPages)
    invalid(`range of ${pages} pages outside 1..${maxPages}; split the report`);
  return Number(pages);
}

/** Namespace read ranges: 1..MAX_RANGES, each inside 2^64 (nlb is 0's based, so never empty). */
export function checkLbaRanges(ranges: readonly LbaRange[]): LbaRange[] {
  if (ranges.length === 0 || ranges.length > MAX_RANGES)
    invalid(`ranges: need 1..${MAX_RANGES}, got ${ranges.length}`);
  for (const r of ranges) {
    if (!Number.isInteger(r.nlb) || r.nlb < 0 || r.nlb > 0xffffffff)
      invalid(`nlb ${r.nlb} outside 0..2^32-1`);
    if (r.slba + BigInt(r.nlb) + 1n > U64_LIMIT) invalid(`range at slba ${r.slba} wraps past 2^64`);
  }
  return ranges.map((r) => ({ slba: r.slba, nlb: r.nlb }));
}
