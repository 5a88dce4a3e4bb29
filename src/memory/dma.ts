/**
 * The device's only way to touch guest memory.
 *
 * A `Dma` holds the DMA map: guest-physical (IOVA) ranges, each backed by bytes the device can address
 * directly (an ArrayBuffer in process, an mmap'd memfd over vfio-user). Every access is bounds-checked
 * against the map; an access that is not wholly inside one mapped range fails (the caller turns that into
 * an NVMe Data Transfer Error). Every device write is recorded by each attached `DirtyLogger` (VFIO DMA
 * logging, TP4159 Track Memory Changes).
 *
 * Accesses are synchronous: the hot path (SQE fetch, CQE post, data copy) allocates nothing.
 */

/** One mapped range of guest memory. */
export interface DmaRegion {
  /** First guest-physical address (IOVA) of the range. */
  readonly iova: number;
  /** Length in bytes. */
  readonly bytes: Uint8Array;
  /** A DataView over `bytes`. */
  readonly view: DataView;
  readonly writable: boolean;
}

/** Receives every device write to guest memory while attached. */
export interface DirtyLogger {
  /** Called with the guest-physical byte range just written. */
  logWrite(iova: number, lengthBytes: number): void;
}

/** A resolved direct window into guest memory: `bytes[offset .. offset+length)`. */
export interface DmaWindow {
  region: DmaRegion;
  /** Byte offset into `region.bytes` / `region.view`. */
  offset: number;
}

export class Dma {
  private regions: DmaRegion[] = [];
  private last: DmaRegion | undefined;
  private loggers: DirtyLogger[] = [];

  /** Adds a range. Returns false (and changes nothing) if it overlaps an existing range. */
  map(iova: number, bytes: Uint8Array, writable = true): boolean {
    const end = iova + bytes.byteLength;
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(end)) return false;
    for (const r of this.regions) {
      if (iova < r.iova + r.bytes.byteLength && r.iova < end) return false;
    }
    const region: DmaRegion = {
      iova,
      bytes,
      view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength),
      writable,
    };
    this.regions.push(region);
    this.regions.sort((a, b) => a.iova - b.iova);
    return true;
  }

  /** Removes the range that starts at `iova` with exactly `lengthBytes`. Returns false if none matches. */
  unmap(iova: number, lengthBytes: number): boolean {
    const i = this.regions.findIndex((r) => r.iova === iova && r.bytes.byteLength === lengthBytes);
    if (i < 0) return false;
    this.regions.splice(i, 1);
    this.last = undefined;
    return true;
  }

  unmapAll(): void {
    this.regions = [];
    this.last = undefined;
  }

  /** The mapped ranges, in address order. */
  ranges(): readonly DmaRegion[] {
    return this.regions;
  }

  attachLogger(logger: DirtyLogger): void {
    if (!this.loggers.includes(logger)) this.loggers.push(logger);
  }

  detachLogger(logger: DirtyLogger): void {
    this.loggers = this.loggers.filter((l) => l !== logger);
  }

  /** True if [iova, iova+length) lies wholly inside one mapped range. */
  contains(iova: number, lengthBytes: number): boolean {
    return this.find(iova, lengthBytes) !== undefined;
  }

  /** Region containing the whole range, or undefined. */
  find(iova: number, lengthBytes: number): DmaRegion | undefined {
    const l = this.last;
    if (l !== undefined && iova >= l.iova && iova + lengthBytes <= l.iova + l.bytes.byteLength) return l;
    for (const r of this.regions) {
      if (iova >= r.iova && iova + lengthBytes <= r.iova + r.bytes.byteLength) {
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  /**
   * A direct window for reading `lengthBytes` at `iova`, or undefined when the range is not mapped.
   * Callers must not write through a read window (use `windowForWrite`, which logs).
   */
  window(iova: number, lengthBytes: number): DmaWindow | undefined {
    const r = this.find(iova, lengthBytes);
    if (r === undefined || lengthBytes < 0) return undefined;
    return { region: r, offset: iova - r.iova };
  }

  /** A direct window for writing; the range is dirty-logged now. Undefined if unmapped or read-only. */
  windowForWrite(iova: number, lengthBytes: number): DmaWindow | undefined {
    const r = this.find(iova, lengthBytes);
    if (r === undefined || !r.writable || lengthBytes < 0) return undefined;
    this.logWrite(iova, lengthBytes);
    return { region: r, offset: iova - r.iova };
  }

  /** Copies guest memory into `dst`. Returns false (copying nothing) if the range is not mapped. */
  read(iova: number, dst: Uint8Array): boolean {
    const r = this.find(iova, dst.byteLength);
    if (r === undefined) return false;
    const off = iova - r.iova;
    dst.set(r.bytes.subarray(off, off + dst.byteLength));
    return true;
  }

  /** Copies `src` into guest memory. Returns false (writing nothing) if unmapped or read-only. */
  write(iova: number, src: Uint8Array): boolean {
    const r = this.find(iova, src.byteLength);
    if (r === undefined || !r.writable) return false;
    r.bytes.set(src, iova - r.iova);
    this.logWrite(iova, src.byteLength);
    return true;
  }

  logWrite(iova: number, lengthBytes: number): void {
    const ls = this.loggers;
    for (let i = 0; i < ls.length; i++) ls[i]!.logWrite(iova, lengthBytes);
  }
}
