/**
 * The table of DMA ranges a client has mapped over one connection, kept by the server (to answer
 * EEXIST / ENOENT and to bound server-initiated DMA) and by the client (to bound DMA requests it
 * serves). Ranges are kept sorted by IOVA and never overlap.
 */
import { Errno } from "./protocol/constants.ts";

export interface DmaTableEntry {
  iova: number;
  sizeBytes: number;
  /** `DmaMapFlag` bits. */
  flags: number;
}

export class DmaTable<E extends DmaTableEntry = DmaTableEntry> {
  #entries: E[] = [];

  /** @param maxEntries most ranges at once; more → ENOSPC. Default 65535 (spec max_dma_maps). */
  constructor(private readonly maxEntries = 65535) {}

  get size(): number {
    return this.#entries.length;
  }

  entries(): readonly E[] {
    return this.#entries;
  }

  /** Index of the first entry whose end lies beyond `iova`. */
  #lowerBound(iova: number): number {
    let lo = 0;
    let hi = this.#entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const e = this.#entries[mid]!;
      if (e.iova + e.sizeBytes <= iova) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds `e`: 0, or EINVAL (empty / unrepresentable), EEXIST (overlap), ENOSPC (table full). */
  add(e: E): number {
    const end = e.iova + e.sizeBytes;
    if (e.sizeBytes <= 0 || e.iova < 0 || !Number.isSafeInteger(end)) return Errno.EINVAL;
    const i = this.#lowerBound(e.iova);
    const next = this.#entries[i];
    if (next !== undefined && next.iova < end) return Errno.EEXIST;
    if (this.#entries.length >= this.maxEntries) return Errno.ENOSPC;
    this.#entries.splice(i, 0, e);
    return 0;
  }

  /** The entry equal to (iova, size), or undefined. */
  findExact(iova: number, sizeBytes: number): E | undefined {
    const e = this.#entries[this.#lowerBound(iova)];
    return e !== undefined && e.iova === iova && e.sizeBytes === sizeBytes ? e : undefined;
  }

  /** Removes the entry equal to (iova, size): 0 or ENOENT. */
  remove(iova: number, sizeBytes: number): number {
    const i = this.#lowerBound(iova);
    const e = this.#entries[i];
    if (e === undefined || e.iova !== iova || e.sizeBytes !== sizeBytes) return Errno.ENOENT;
    this.#entries.splice(i, 1);
    return 0;
  }

  /** The entry containing all of [iova, iova + count), or undefined. */
  find(iova: number, count: number): E | undefined {
    if (!(iova >= 0) || !(count > 0)) return undefined;
    const e = this.#entries[this.#lowerBound(iova)];
    if (e === undefined || e.iova > iova || iova + count > e.iova + e.sizeBytes) return undefined;
    return e;
  }

  clear(): E[] {
    return this.#entries.splice(0);
  }
}
