/**
 * LbaChangeLog: which logical blocks changed (writes, Write Zeroes, Deallocate) since the last drain —
 * the user-data log a source device keeps during migration when its storage is local.
 *
 * Representation: a sparse bitmap with one bit per *unit* of `granularityLbas` blocks, held in pages of
 * 32768 bits (4 KiB) allocated on first use. Recording a range sets every unit it touches, so drained
 * ranges are the recorded ones rounded out to the granularity (and clipped to `lbaCount` when known);
 * adjacent units coalesce into one range. Recording one unit is a page lookup (cached) and one bit set;
 * recording a long range sets whole 32-bit words.
 *
 * Counts here are 1-based: `record(slba, nlb)` takes the number of blocks (the NVMe NLB field is 0's
 * based — the caller adds 1), and drained `{ slba, nlb }` carry counts too.
 */

/** A range of logical blocks; `nlb` is a count (1-based), not the 0's based NVMe field. */
export interface LbaRange {
  slba: number;
  nlb: number;
}

export interface LbaChangeLogOptions {
  /**
   * Blocks per tracked unit. Default 8; a power of two from 1 to 65536. Larger units mean a smaller
   * bitmap and coarser (more) data to resend.
   */
  granularityLbas?: number;
  /**
   * Namespace size in blocks. Optional (default: unbounded, up to 2^53 − 1). When given, `record` beyond
   * it is a bug (RangeError), drained ranges are clipped to it and it is `markAll`'s default.
   */
  lbaCount?: number;
}

export const DEFAULT_GRANULARITY_LBAS = 8;
const MAX_GRANULARITY_LBAS = 65536;
const PAGE_BITS = 32768;
const PAGE_WORDS = PAGE_BITS / 32;

interface Page {
  readonly words: Uint32Array;
  /** Number of set bits in `words`. */
  setBits: number;
}

export class LbaChangeLog {
  readonly granularityLbas: number;
  readonly lbaCount: number | undefined;
  private readonly limitLbas: number;
  private readonly pages = new Map<number, Page>();
  private setUnitCount = 0;
  private lastPageIndex = -1;
  private lastPage: Page | undefined;

  constructor(options: LbaChangeLogOptions = {}) {
    const g = options.granularityLbas ?? DEFAULT_GRANULARITY_LBAS;
    if (!Number.isInteger(g) || g < 1 || g > MAX_GRANULARITY_LBAS || (g & (g - 1)) !== 0) {
      throw new RangeError(`granularityLbas must be a power of two in [1, 65536], got ${g}`);
    }
    const n = options.lbaCount;
    if (n !== undefined && (!Number.isSafeInteger(n) || n < 1)) {
      throw new RangeError(`lbaCount must be a positive integer, got ${n}`);
    }
    this.granularityLbas = g;
    this.lbaCount = n;
    this.limitLbas = n ?? Number.MAX_SAFE_INTEGER;
  }

  /** Records that `nlb` blocks (a count; 0 records nothing) starting at `slba` changed. */
  record(slba: number, nlb: number): void {
    if (!Number.isSafeInteger(slba) || !Number.isSafeInteger(nlb) || slba < 0 || nlb < 0) {
      throw new RangeError(`record(${slba}, ${nlb}): not a block range`);
    }
    if (nlb === 0) return;
    if (slba + nlb > this.limitLbas) {
      throw new RangeError(`record(${slba}, ${nlb}) beyond lbaCount ${this.limitLbas}`);
    }
    const g = this.granularityLbas;
    const u0 = Math.floor(slba / g);
    const u1 = Math.floor((slba + nlb - 1) / g);
    if (u0 === u1) this.setUnit(u0);
    else this.setUnits(u0, u1 + 1);
  }

  /** Marks the whole namespace `[0, lbaCount)` changed (the first pre-copy pass). */
  markAll(lbaCount: number | undefined = this.lbaCount): void {
    if (lbaCount === undefined) throw new RangeError("markAll needs lbaCount (none given at construction)");
    this.record(0, lbaCount);
  }

  /** Number of blocks a full `drain()` would return now. */
  pendingLbas(): number {
    let lbas = this.setUnitCount * this.granularityLbas;
    const n = this.lbaCount;
    if (n !== undefined && n % this.granularityLbas !== 0) {
      const lastUnit = Math.floor((n - 1) / this.granularityLbas);
      if (this.hasUnit(lastUnit)) lbas -= this.granularityLbas - (n % this.granularityLbas);
    }
    return lbas;
  }

  /** True when nothing is pending. */
  isEmpty(): boolean {
    return this.setUnitCount === 0;
  }

  /**
   * Returns and clears up to `maxRanges` (default: all) maximal changed ranges, in LBA order. Each range
   * is complete: a range is never split between two drains.
   */
  drain(maxRanges = Number.POSITIVE_INFINITY): LbaRange[] {
    if (!(maxRanges >= 1)) throw new RangeError(`maxRanges must be ≥ 1, got ${maxRanges}`);
    if (this.setUnitCount === 0) return [];
    const runs: number[] = []; // flat [start, end) unit pairs
    const maxRunValues = maxRanges * 2;
    let runStart = -1;
    let runEnd = -1;
    let stopped = false;
    const keys = [...this.pages.keys()].sort((a, b) => a - b);
    scan: for (const p of keys) {
      const words = this.pages.get(p)!.words;
      const pageBase = p * PAGE_BITS;
      for (let wi = 0; wi < PAGE_WORDS; wi++) {
        let w = words[wi]!;
        if (w === 0) continue;
        const base = pageBase + wi * 32;
        if (w === 0xffffffff && base === runEnd) {
          runEnd = base + 32;
          continue;
        }
        while (w !== 0) {
          const tz = 31 - Math.clz32(w & -w);
          const inv = ~(w >>> tz);
          const ones = inv === 0 ? 32 : 31 - Math.clz32(inv & -inv);
          const start = base + tz;
          if (start === runEnd) {
            runEnd = start + ones;
          } else {
            if (runStart >= 0) {
              runs.push(runStart, runEnd);
              if (runs.length >= maxRunValues) {
                stopped = true;
                break scan;
              }
            }
            runStart = start;
            runEnd = start + ones;
          }
          w = tz + ones >= 32 ? 0 : w & ~(((1 << ones) - 1) << tz);
        }
      }
    }
    if (!stopped && runStart >= 0) runs.push(runStart, runEnd);

    if (stopped) {
      for (let i = 0; i < runs.length; i += 2) this.clearUnits(runs[i]!, runs[i + 1]!);
    } else {
      this.clear();
    }

    const g = this.granularityLbas;
    const out: LbaRange[] = new Array(runs.length / 2);
    for (let i = 0; i < runs.length; i += 2) {
      const slba = runs[i]! * g;
      const end = Math.min(runs[i + 1]! * g, this.limitLbas);
      out[i / 2] = { slba, nlb: end - slba };
    }
    return out;
  }

  /** Forgets everything pending. */
  clear(): void {
    this.pages.clear();
    this.setUnitCount = 0;
    this.lastPageIndex = -1;
    this.lastPage = undefined;
  }

  private page(p: number): Page {
    if (p === this.lastPageIndex) return this.lastPage!;
    let page = this.pages.get(p);
    if (page === undefined) {
      page = { words: new Uint32Array(PAGE_WORDS), setBits: 0 };
      this.pages.set(p, page);
    }
    this.lastPageIndex = p;
    this.lastPage = page;
    return page;
  }

  private hasUnit(u: number): boolean {
    const p = Math.floor(u / PAGE_BITS);
    const page = this.pages.get(p);
    if (page === undefined) return false;
    const bit = u - p * PAGE_BITS;
    return (page.words[bit >>> 5]! & (1 << (bit & 31))) !== 0;
  }

  private setUnit(u: number): void {
    const p = Math.floor(u / PAGE_BITS);
    const page = this.page(p);
    const bit = u - p * PAGE_BITS;
    const wi = bit >>> 5;
    const mask = 1 << (bit & 31);
    const w = page.words[wi]!;
    if ((w & mask) === 0) {
      page.words[wi] = w | mask;
      page.setBits++;
      this.setUnitCount++;
    }
  }

  /** Sets units [u0, u1). */
  private setUnits(u0: number, u1: number): void {
    let u = u0;
    while (u < u1) {
      const p = Math.floor(u / PAGE_BITS);
      const page = this.page(p);
      const pageBase = p * PAGE_BITS;
      const from = u - pageBase;
      const to = Math.min(u1 - pageBase, PAGE_BITS);
      const added = applyBits(page.words, from, to, true);
      page.setBits += added;
      this.setUnitCount += added;
      u = pageBase + to;
    }
  }

  /** Clears units [u0, u1); frees pages left empty. */
  private clearUnits(u0: number, u1: number): void {
    let u = u0;
    while (u < u1) {
      const p = Math.floor(u / PAGE_BITS);
      const pageBase = p * PAGE_BITS;
      const to = Math.min(u1 - pageBase, PAGE_BITS);
      const page = this.pages.get(p);
      if (page !== undefined) {
        const removed = applyBits(page.words, u - pageBase, to, false);
        page.setBits -= removed;
        this.setUnitCount -= removed;
        if (page.setBits === 0) {
          this.pages.delete(p);
          if (this.lastPageIndex === p) {
            this.lastPageIndex = -1;
            this.lastPage = undefined;
          }
        }
      }
      u = pageBase + to;
    }
  }
}

/** Sets (or clears) bits [from, to) of `words`; returns how many bits changed. */
function applyBits(words: Uint32Array, from: number, to: number, set: boolean): number {
  let changed = 0;
  let b = from;
  while (b < to) {
    const wi = b >>> 5;
    const lo = b & 31;
    const hi = Math.min(32, lo + (to - b));
    const mask = hi - lo === 32 ? -1 : (((1 << (hi - lo)) - 1) << lo) | 0;
    const w = words[wi]!;
    const flip = set ? mask & ~w : mask & w;
    if (flip !== 0) {
      changed += popcount32(flip);
      words[wi] = set ? w | mask : w & ~mask;
    }
    b += hi - lo;
  }
  return changed;
}

function popcount32(x: number): number {
  let v = x >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
