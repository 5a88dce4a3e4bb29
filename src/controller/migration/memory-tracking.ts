/**
 * Track Memory Changes (nvmig's layout of TP4159 Track Send SEL 1 / Track Receive SEL 0; see
 * `src/nvme/track-commands.ts`): the controlling controller marks, per host-given range, every granule
 * of host memory that the controlled controller's DMA writes, and returns the marks read-and-clear.
 */
import type { DirtyLogger } from "../../memory/dma.ts";
import type { TrackMemoryRange } from "../../nvme/track-commands.ts";
import type { NvmeController } from "../controller.ts";

export class MemoryChangeTracker implements DirtyLogger {
  readonly bitmaps: Uint8Array[];
  private readonly granuleBytes: number;

  constructor(
    readonly target: NvmeController,
    readonly ranges: readonly TrackMemoryRange[],
    /** Granularity, log2 bytes (RMRTG). */
    readonly rmrtg: number,
  ) {
    this.granuleBytes = 2 ** rmrtg;
    this.bitmaps = ranges.map(
      (r) => new Uint8Array(Math.ceil(Math.ceil(r.length / this.granuleBytes) / 32) * 4),
    );
    target.dma.attachLogger(this);
  }

  logWrite(iova: number, lengthBytes: number): void {
    if (lengthBytes <= 0) return;
    const end = iova + lengthBytes;
    const g = this.granuleBytes;
    for (let i = 0; i < this.ranges.length; i++) {
      const r = this.ranges[i]!;
      const lo = Math.max(iova, r.iova);
      const hi = Math.min(end, r.iova + r.length);
      if (lo >= hi) continue;
      const bm = this.bitmaps[i]!;
      const first = Math.floor((lo - r.iova) / g);
      const last = Math.floor((hi - 1 - r.iova) / g);
      for (let n = first; n <= last; n++) bm[n >>> 3]! |= 1 << (n & 7);
    }
  }

  /** Returns and clears `dwords` dwords of range `ridx`'s bitmap from dword `offset`; undefined if out of range. */
  readAndClear(ridx: number, offsetDwords: number, dwords: number): Uint8Array | undefined {
    const bm = this.bitmaps[ridx];
    if (bm === undefined) return undefined;
    const out = new Uint8Array(dwords * 4);
    const from = offsetDwords * 4;
    if (from > bm.byteLength) return undefined;
    const to = Math.min(bm.byteLength, from + out.byteLength);
    out.set(bm.subarray(from, to));
    bm.fill(0, from, to);
    return out;
  }

  stop(): void {
    this.target.dma.detachLogger(this);
  }
}

const trackers = new WeakMap<NvmeController, MemoryChangeTracker>();

export function trackerOf(target: NvmeController): MemoryChangeTracker | undefined {
  return trackers.get(target);
}

export function setTracker(target: NvmeController, t: MemoryChangeTracker | undefined): void {
  trackers.get(target)?.stop();
  if (t === undefined) trackers.delete(target);
  else trackers.set(target, t);
}
