/**
 * Guest RAM as the VMM sees it: guest-physical bytes backed by a caller-supplied `Uint8Array` (an
 * ArrayBuffer in process, an mmap'd memfd shared with a vfio-user server), a page allocator for the
 * guest OS side (driver queues, data buffers), and the CPU-side dirty log.
 *
 * Dirty logging covers CPU writes only — the ones made through this object by guest code (the driver
 * writing SQEs, PRP lists and shadow doorbells, the workload filling write buffers). Device writes go
 * through the device's `Dma` and are logged there. So guest code must never write RAM behind this
 * object's back: read with `view`/`read`/`dataView`, write with `write`/`viewForWrite`/`writeU*`, or
 * write through `dataView` and then call `markDirty` for the range.
 *
 * Page size is 4096 bytes. Guest-physical addresses (GPAs) are byte offsets into the backing bytes;
 * whoever attaches a function maps these bytes into the function's DMA map at IOVA 0, so GPA = IOVA.
 */
import { GuestMemoryError } from "./guest-memory-error.ts";

export const GUEST_PAGE_BYTES = 4096;
export const GUEST_PAGE_SHIFT = 12;

/** Options of `GuestMemory`. */
export interface GuestMemoryOptions {
  /**
   * Pages at the bottom of RAM the allocator never hands out, so that GPA 0 is never a valid buffer
   * (a zero PRP then points at nothing the guest owns). Default 1, range 0..pageCount.
   */
  reservedLowPages?: number;
}

/** A run of free pages [firstPage, firstPage + pageCount). */
interface FreeRun {
  firstPage: number;
  pageCount: number;
}

/** `GuestMemory.saveAllocator()`: free runs [firstPage, pageCount] and allocations [gpa, pages]. */
export interface GuestMemoryAllocatorState {
  freeRuns: [number, number][];
  allocations: [number, number][];
  allocatedPageCount: number;
}

export class GuestMemory {
  /** Size of guest RAM in bytes (a multiple of 4096). */
  readonly sizeBytes: number;
  /** Number of 4 KiB pages. */
  readonly pageCount: number;
  /** The backing bytes: GPA g is `bytes[g]`. Read freely; write only through this object. */
  bytes: Uint8Array;
  /**
   * A DataView over all of guest RAM. Reads are free; a write through it must be followed by
   * `markDirty(gpa, lengthBytes)` so the CPU dirty log sees it.
   */
  dataView: DataView;

  private freeRuns: FreeRun[];
  /** GPA of each live allocation → its length in pages. */
  private readonly allocations = new Map<number, number>();
  private allocatedPageCount = 0;

  private logging = false;
  /** Dirty bitmap: bit (page & 31) of word (page >>> 5). */
  private readonly dirtyBits: Uint32Array;
  private dirtyCount = 0;

  constructor(bytes: Uint8Array, options: GuestMemoryOptions = {}) {
    const sizeBytes = bytes.byteLength;
    if (sizeBytes === 0 || sizeBytes % GUEST_PAGE_BYTES !== 0) {
      throw new GuestMemoryError(
        "invalid-argument",
        `guest RAM size ${sizeBytes} is not a positive multiple of ${GUEST_PAGE_BYTES}`,
      );
    }
    this.sizeBytes = sizeBytes;
    this.pageCount = sizeBytes / GUEST_PAGE_BYTES;
    this.bytes = bytes;
    this.dataView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const reserved = options.reservedLowPages ?? 1;
    if (!Number.isInteger(reserved) || reserved < 0 || reserved > this.pageCount) {
      throw new GuestMemoryError("invalid-argument", `reservedLowPages ${reserved} out of range`);
    }
    this.freeRuns =
      reserved < this.pageCount ? [{ firstPage: reserved, pageCount: this.pageCount - reserved }] : [];
    this.dirtyBits = new Uint32Array(Math.ceil(this.pageCount / 32));
  }

  /**
   * Moves guest RAM onto other backing bytes of the same size — how a migrated VM continues on the
   * destination's RAM (which the migration filled). Allocations and the dirty log are kept. Callers
   * must re-map the new bytes wherever the old ones were mapped (a port's `retarget` does).
   */
  rebind(bytes: Uint8Array): void {
    if (bytes.byteLength !== this.sizeBytes) {
      throw new GuestMemoryError(
        "invalid-argument",
        `rebind to ${bytes.byteLength} bytes, RAM is ${this.sizeBytes}`,
      );
    }
    this.bytes = bytes;
    this.dataView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  // ------------------------------------------------------------------ saved state

  /** The allocator's state, for the guest-state section of a migration (`guest-state.ts`). */
  saveAllocator(): GuestMemoryAllocatorState {
    return {
      freeRuns: this.freeRuns.map((r) => [r.firstPage, r.pageCount] as [number, number]),
      allocations: Array.from(this.allocations.entries()),
      allocatedPageCount: this.allocatedPageCount,
    };
  }

  /**
   * Takes over a saved allocator state (a migrated guest continuing here); the dirty log is left off.
   * @throws GuestMemoryError `invalid-argument` when a run or allocation lies outside this RAM.
   */
  loadAllocator(s: GuestMemoryAllocatorState): void {
    const inRam = (first: number, count: number) =>
      Number.isInteger(first) &&
      Number.isInteger(count) &&
      first >= 0 &&
      count >= 1 &&
      first + count <= this.pageCount;
    for (const [first, count] of s.freeRuns) {
      if (!inRam(first, count))
        throw new GuestMemoryError("invalid-argument", `saved free run [${first}, +${count}) outside RAM`);
    }
    for (const [gpa, pages] of s.allocations) {
      if (gpa % GUEST_PAGE_BYTES !== 0 || !inRam(gpa / GUEST_PAGE_BYTES, pages))
        throw new GuestMemoryError("invalid-argument", `saved allocation 0x${gpa.toString(16)} outside RAM`);
    }
    this.freeRuns = s.freeRuns.map(([firstPage, pageCount]) => ({ firstPage, pageCount }));
    this.allocations.clear();
    for (const [gpa, pages] of s.allocations) this.allocations.set(gpa, pages);
    this.allocatedPageCount = s.allocatedPageCount;
  }

  // ------------------------------------------------------------------ allocator

  /**
   * Allocates `pageCount` physically contiguous pages (first fit) and returns the GPA of the first.
   * The pages are not cleared (use `fill` if the caller needs zeroes).
   * @throws GuestMemoryError `out-of-memory` when no run is large enough.
   */
  allocPages(pageCount: number): number {
    if (!Number.isInteger(pageCount) || pageCount < 1) {
      throw new GuestMemoryError("invalid-argument", `cannot allocate ${pageCount} pages`);
    }
    const runs = this.freeRuns;
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i]!;
      if (run.pageCount < pageCount) continue;
      const firstPage = run.firstPage;
      if (run.pageCount === pageCount) runs.splice(i, 1);
      else {
        run.firstPage += pageCount;
        run.pageCount -= pageCount;
      }
      const gpa = firstPage * GUEST_PAGE_BYTES;
      this.allocations.set(gpa, pageCount);
      this.allocatedPageCount += pageCount;
      return gpa;
    }
    throw new GuestMemoryError(
      "out-of-memory",
      `no ${pageCount} contiguous free pages (${this.freePageCount} free of ${this.pageCount})`,
    );
  }

  /** Allocates enough pages for `lengthBytes` (rounded up to whole pages). */
  allocBytes(lengthBytes: number): number {
    return this.allocPages(Math.max(1, Math.ceil(lengthBytes / GUEST_PAGE_BYTES)));
  }

  /**
   * Frees an allocation made by `allocPages`/`allocBytes`, given its GPA.
   * @throws GuestMemoryError `double-free` if `gpa` is not the start of a live allocation.
   */
  free(gpa: number): void {
    const pageCount = this.allocations.get(gpa);
    if (pageCount === undefined) {
      throw new GuestMemoryError("double-free", `0x${gpa.toString(16)} is not a live allocation`);
    }
    this.allocations.delete(gpa);
    this.allocatedPageCount -= pageCount;
    const firstPage = gpa / GUEST_PAGE_BYTES;
    const runs = this.freeRuns;
    // Insert in address order, then merge with the neighbours.
    let i = 0;
    while (i < runs.length && runs[i]!.firstPage < firstPage) i++;
    runs.splice(i, 0, { firstPage, pageCount });
    const next = runs[i + 1];
    const cur = runs[i]!;
    if (next !== undefined && cur.firstPage + cur.pageCount === next.firstPage) {
      cur.pageCount += next.pageCount;
      runs.splice(i + 1, 1);
    }
    const prev = runs[i - 1];
    if (prev !== undefined && prev.firstPage + prev.pageCount === cur.firstPage) {
      prev.pageCount += cur.pageCount;
      runs.splice(i, 1);
    }
  }

  /** Length in pages of the live allocation at `gpa`, or undefined. */
  allocationPages(gpa: number): number | undefined {
    return this.allocations.get(gpa);
  }

  /** Pages currently handed out by the allocator. */
  get allocatedPages(): number {
    return this.allocatedPageCount;
  }

  /** Pages the allocator can still hand out (not necessarily contiguous). */
  get freePageCount(): number {
    let n = 0;
    for (const r of this.freeRuns) n += r.pageCount;
    return n;
  }

  /** Largest contiguous allocation that would succeed now, in pages. */
  get largestFreeRunPages(): number {
    let n = 0;
    for (const r of this.freeRuns) if (r.pageCount > n) n = r.pageCount;
    return n;
  }

  // ------------------------------------------------------------------ accessors

  /** True if [gpa, gpa + lengthBytes) lies inside guest RAM. */
  contains(gpa: number, lengthBytes: number): boolean {
    return (
      Number.isInteger(gpa) &&
      Number.isInteger(lengthBytes) &&
      gpa >= 0 &&
      lengthBytes >= 0 &&
      gpa + lengthBytes <= this.sizeBytes
    );
  }

  private check(gpa: number, lengthBytes: number): void {
    if (!this.contains(gpa, lengthBytes)) {
      throw new GuestMemoryError(
        "out-of-bounds",
        `access [0x${gpa.toString(16)}, +${lengthBytes}) outside guest RAM of ${this.sizeBytes} bytes`,
      );
    }
  }

  /** Copies guest RAM at `gpa` into `dst`. */
  read(gpa: number, dst: Uint8Array): void {
    this.check(gpa, dst.byteLength);
    dst.set(this.bytes.subarray(gpa, gpa + dst.byteLength));
  }

  /** Copies `src` into guest RAM at `gpa` (dirty-logged). */
  write(gpa: number, src: Uint8Array): void {
    this.check(gpa, src.byteLength);
    this.bytes.set(src, gpa);
    this.markDirty(gpa, src.byteLength);
  }

  /** Sets `lengthBytes` bytes at `gpa` to `value` (dirty-logged). */
  fill(gpa: number, lengthBytes: number, value = 0): void {
    this.check(gpa, lengthBytes);
    this.bytes.fill(value, gpa, gpa + lengthBytes);
    this.markDirty(gpa, lengthBytes);
  }

  /** A read-only-by-contract view of guest RAM (no copy). Do not write through it. */
  view(gpa: number, lengthBytes: number): Uint8Array {
    this.check(gpa, lengthBytes);
    return this.bytes.subarray(gpa, gpa + lengthBytes);
  }

  /** A view for writing: the range is marked dirty now; write through it right away. */
  viewForWrite(gpa: number, lengthBytes: number): Uint8Array {
    this.check(gpa, lengthBytes);
    this.markDirty(gpa, lengthBytes);
    return this.bytes.subarray(gpa, gpa + lengthBytes);
  }

  readU16(gpa: number): number {
    this.check(gpa, 2);
    return this.dataView.getUint16(gpa, true);
  }
  readU32(gpa: number): number {
    this.check(gpa, 4);
    return this.dataView.getUint32(gpa, true);
  }
  /** 64-bit little-endian read as a number (values ≥ 2^53 lose precision). */
  readU64(gpa: number): number {
    this.check(gpa, 8);
    return this.dataView.getUint32(gpa, true) + this.dataView.getUint32(gpa + 4, true) * 0x1_0000_0000;
  }
  writeU16(gpa: number, value: number): void {
    this.check(gpa, 2);
    this.dataView.setUint16(gpa, value, true);
    this.markDirty(gpa, 2);
  }
  writeU32(gpa: number, value: number): void {
    this.check(gpa, 4);
    this.dataView.setUint32(gpa, value >>> 0, true);
    this.markDirty(gpa, 4);
  }
  /** 64-bit little-endian write of a non-negative safe integer. */
  writeU64(gpa: number, value: number): void {
    this.check(gpa, 8);
    this.dataView.setUint32(gpa, value >>> 0, true);
    this.dataView.setUint32(gpa + 4, Math.floor(value / 0x1_0000_0000), true);
    this.markDirty(gpa, 8);
  }

  // ------------------------------------------------------------------ dirty log

  /** True while the CPU dirty log is on. */
  get dirtyLogging(): boolean {
    return this.logging;
  }

  /** Turns the CPU dirty log on with an empty bitmap. */
  startDirtyLog(): void {
    this.dirtyBits.fill(0);
    this.dirtyCount = 0;
    this.logging = true;
  }

  /** Turns the dirty log off and drops what it held. */
  stopDirtyLog(): void {
    this.logging = false;
    this.dirtyBits.fill(0);
    this.dirtyCount = 0;
  }

  /**
   * Records a CPU write of `lengthBytes` at `gpa` (no-op while logging is off). Called by every writer
   * here; call it yourself after writing through `dataView`.
   */
  markDirty(gpa: number, lengthBytes: number): void {
    if (!this.logging || lengthBytes <= 0) return;
    const first = Math.floor(gpa / GUEST_PAGE_BYTES);
    const last = Math.floor((gpa + lengthBytes - 1) / GUEST_PAGE_BYTES);
    const bits = this.dirtyBits;
    for (let p = first; p <= last; p++) {
      const w = p >>> 5;
      const m = 1 << (p & 31);
      const old = bits[w]!;
      if ((old & m) === 0) {
        bits[w] = old | m;
        this.dirtyCount++;
      }
    }
  }

  /** Marks every page dirty (e.g. to start a migration pass that must send all of RAM). */
  markAllDirty(): void {
    if (!this.logging) return;
    this.dirtyBits.fill(0xffffffff);
    const tail = this.pageCount & 31;
    if (tail !== 0) this.dirtyBits[this.dirtyBits.length - 1] = (1 << tail) - 1;
    this.dirtyCount = this.pageCount;
  }

  /** Pages dirty now (not cleared). */
  get dirtyPageCount(): number {
    return this.dirtyCount;
  }

  /** Read-and-clear: the dirty page numbers in ascending order. */
  collectDirty(): Uint32Array {
    const out = new Uint32Array(this.dirtyCount);
    const bits = this.dirtyBits;
    let n = 0;
    for (let w = 0; w < bits.length; w++) {
      let word = bits[w]!;
      if (word === 0) continue;
      bits[w] = 0;
      while (word !== 0) {
        const b = 31 - Math.clz32(word & -word);
        out[n++] = w * 32 + b;
        word &= word - 1;
      }
    }
    this.dirtyCount = 0;
    return out;
  }

  /**
   * Read-and-clear: a copy of the dirty bitmap, one bit per page, bit (p % 32) of word (p / 32),
   * the same layout as VFIO's dirty bitmaps in 32-bit words.
   */
  collectDirtyBitmap(): Uint32Array {
    const out = this.dirtyBits.slice();
    this.dirtyBits.fill(0);
    this.dirtyCount = 0;
    return out;
  }
}

/** Allocates `sizeBytes` (a positive multiple of 4096) of zeroed guest RAM in process. */
export function createGuestMemory(sizeBytes: number, options?: GuestMemoryOptions): GuestMemory {
  if (!Number.isInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % GUEST_PAGE_BYTES !== 0) {
    throw new GuestMemoryError(
      "invalid-argument",
      `guest RAM size ${sizeBytes} is not a positive multiple of ${GUEST_PAGE_BYTES}`,
    );
  }
  return new GuestMemory(new Uint8Array(new ArrayBuffer(sizeBytes)), options);
}
