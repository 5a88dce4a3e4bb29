/**
 * `DirtyPageBitmap`: generic device DMA logging over `Dma`'s dirty-logger hook — the DMA logging
 * backend a variant driver attaches to its function's `Dma`.
 *
 * START picks a granularity (the hint clamped to [minPageBytes, maxPageBytes]) and keeps one bitmap per
 * range at that granularity (or one for the whole address space when the scope is "all"). Bitmaps are
 * sparse: 4 KiB chunks of words allocated on first write, so a range covering all of guest RAM costs
 * nothing until written. Every `logWrite` marks each logged page the write touches, clipped to the ranges.
 *
 * REPORT works at any power-of-two page size ≥ 4096: each dirty logged page sets every report bit whose
 * page overlaps it (replicated when the report page is smaller, merged when larger), clipped to the
 * report window. Read-and-clear clears a logged page only when the window covers it wholly, so a
 * partially covered page is reported now and again by the next report that covers the rest — nothing
 * written is ever lost.
 */
import type { DirtyLogger, Dma } from "../memory/dma.ts";
import type { DmaLoggingBackend, DmaLoggingScope } from "./backend.ts";
import { dmaBitmapBytes } from "./dma-logging.ts";
import { Errno } from "./states.ts";

export interface DirtyPageBitmapOptions {
  /**
   * The `Dma` to attach to while started (attached on start, detached on stop). Default: none — the owner
   * calls `attachLogger` itself.
   */
  readonly dma?: Dma;
  /** Finest logging granularity, bytes; a power of two ≥ 512. Default 4096. */
  readonly minPageBytes?: number;
  /** Coarsest logging granularity, bytes; a power of two ≥ minPageBytes. Default 1 GiB. */
  readonly maxPageBytes?: number;
}

/** Pages per chunk (2^15 → 1024 u32 words = 4 KiB of bitmap per 128 MiB at 4 KiB pages). */
const CHUNK_PAGES = 1 << 15;
const CHUNK_WORDS = CHUNK_PAGES / 32;
/** Device writes are to safe-integer addresses (see `Dma.map`); nothing at or above this is ever dirty. */
const ADDRESS_LIMIT = 2 ** 53;

interface LoggedRange {
  /** First byte (inclusive) and end (exclusive), clipped to ADDRESS_LIMIT. */
  readonly start: number;
  readonly end: number;
}

function isPow2(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export class DirtyPageBitmap implements DirtyLogger, DmaLoggingBackend {
  private readonly dma: Dma | undefined;
  private readonly minPageBytes: number;
  private readonly maxPageBytes: number;
  /** Logging granularity; 0 while stopped. */
  private page = 0;
  /** Sorted, non-overlapping; undefined = everything. */
  private ranges: readonly LoggedRange[] | undefined;
  /** chunk index (page / CHUNK_PAGES) → words; bit p%32 of word (p%CHUNK_PAGES)/32 ↔ logged page p. */
  private readonly chunks = new Map<number, Uint32Array>();

  constructor(options: DirtyPageBitmapOptions = {}) {
    this.dma = options.dma;
    this.minPageBytes = options.minPageBytes ?? 4096;
    this.maxPageBytes = options.maxPageBytes ?? 2 ** 30;
    if (!isPow2(this.minPageBytes) || this.minPageBytes < 512)
      throw new RangeError("minPageBytes: power of two ≥ 512");
    if (!isPow2(this.maxPageBytes) || this.maxPageBytes < this.minPageBytes) {
      throw new RangeError("maxPageBytes: power of two ≥ minPageBytes");
    }
  }

  /** True while started. */
  get active(): boolean {
    return this.page !== 0;
  }

  /** Logging granularity in bytes (0 while stopped). */
  get pageBytes(): number {
    return this.page;
  }

  start(scope: DmaLoggingScope, pageSize: bigint): { pageSize: bigint } | { errno: number } {
    if (this.page !== 0) return { errno: Errno.EBUSY };
    const hint = pageSize > BigInt(this.maxPageBytes) ? this.maxPageBytes : Number(pageSize);
    this.page = Math.max(this.minPageBytes, Math.min(this.maxPageBytes, hint));
    if (scope === "all") {
      this.ranges = undefined;
    } else {
      const list: LoggedRange[] = [];
      for (const r of scope) {
        if (r.iova >= BigInt(ADDRESS_LIMIT)) continue;
        const end = r.iova + r.length;
        list.push({ start: Number(r.iova), end: end > BigInt(ADDRESS_LIMIT) ? ADDRESS_LIMIT : Number(end) });
      }
      list.sort((a, b) => a.start - b.start);
      this.ranges = list;
    }
    this.chunks.clear();
    this.dma?.attachLogger(this);
    return { pageSize: BigInt(this.page) };
  }

  stop(): void {
    this.dma?.detachLogger(this);
    this.page = 0;
    this.ranges = undefined;
    this.chunks.clear();
  }

  /** DirtyLogger: the device wrote `[iova, iova + lengthBytes)`. */
  logWrite(iova: number, lengthBytes: number): void {
    if (this.page === 0 || !(lengthBytes > 0)) return;
    const end = iova + lengthBytes;
    const ranges = this.ranges;
    if (ranges === undefined) {
      this.mark(iova, Math.min(end, ADDRESS_LIMIT));
      return;
    }
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i]!;
      if (r.start >= end) break;
      const lo = Math.max(iova, r.start);
      const hi = Math.min(end, r.end);
      if (lo < hi) this.mark(lo, hi);
    }
  }

  /** Marks every logged page touched by `[lo, hi)` (non-empty). */
  private mark(lo: number, hi: number): void {
    const page = this.page;
    const p1 = Math.floor((hi - 1) / page);
    let p = Math.floor(lo / page);
    while (p <= p1) {
      const c = Math.floor(p / CHUNK_PAGES);
      let words = this.chunks.get(c);
      if (words === undefined) {
        words = new Uint32Array(CHUNK_WORDS);
        this.chunks.set(c, words);
      }
      const base = c * CHUNK_PAGES;
      const last = Math.min(p1, base + CHUNK_PAGES - 1);
      for (let i = p - base, e = last - base; i <= e; i++) words[i >>> 5]! |= 1 << (i & 31);
      p = last + 1;
    }
  }

  reportAndClear(iova: bigint, length: bigint, pageSize: bigint): Uint8Array | { errno: number } {
    if (this.page === 0) return { errno: Errno.EINVAL };
    const out = new Uint8Array(Number(dmaBitmapBytes(length, pageSize)));
    if (iova >= BigInt(ADDRESS_LIMIT)) return out;
    const wLo = Number(iova);
    const endBig = iova + length;
    const wHi = endBig > BigInt(ADDRESS_LIMIT) ? ADDRESS_LIMIT : Number(endBig);
    const rep = Number(pageSize); // a power of two: exact as a double
    const page = this.page;
    const k0 = Math.floor(wLo / page);
    const k1 = Math.floor((wHi - 1) / page);
    // Common case (QEMU): report page = log page, window aligned to it → bit n = k − k0.
    const aligned = rep === page && wLo % page === 0;
    for (const [c, words] of this.chunks) {
      const base = c * CHUNK_PAGES;
      if (base + CHUNK_PAGES - 1 < k0 || base > k1) continue;
      let anyLeft = false;
      for (let w = 0; w < CHUNK_WORDS; w++) {
        let bits = words[w]!;
        if (bits === 0) continue;
        let cleared = bits;
        while (bits !== 0) {
          const b = 31 - Math.clz32(bits & -bits);
          bits &= bits - 1;
          const k = base + w * 32 + b;
          if (k < k0 || k > k1) continue;
          const pLo = k * page;
          const pHi = pLo + page;
          if (aligned) {
            const n = k - k0;
            out[n >>> 3]! |= 1 << (n & 7);
            if (pHi <= wHi) cleared &= ~(1 << b);
            continue;
          }
          const lo = Math.max(pLo, wLo);
          const hi = pHi < wHi ? pHi : wHi;
          const n1 = Math.floor((hi - 1 - wLo) / rep);
          for (let n = Math.floor((lo - wLo) / rep); n <= n1; n++) out[n >>> 3]! |= 1 << (n & 7);
          if (pLo >= wLo && pHi <= wHi) cleared &= ~(1 << b);
        }
        words[w] = cleared;
        if (cleared !== 0) anyLeft = true;
      }
      if (!anyLeft) this.chunks.delete(c);
    }
    return out;
  }
}
