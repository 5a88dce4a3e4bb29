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
 *
 * Remote regions: guest memory the device cannot address directly (a vfio-user client's DMA_MAP without
 * an fd) is reachable only asynchronously, through a `RemoteDmaAccessor` (DMA_READ / DMA_WRITE messages).
 * Such ranges are kept apart from the direct ones: `find`, `window`, `read`, `write` never return them
 * (the synchronous fast path is unchanged); `findRemote`, `readRemote`, `writeRemote` reach them. Direct
 * and remote ranges never overlap. A remote write is dirty-logged when it settles (success or failure:
 * by then any byte that was going to land has landed, so a report taken before it cannot miss it).
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

/** Asynchronous access to guest memory the device cannot address directly. */
export interface RemoteDmaAccessor {
  /** Resolves with `lengthBytes` bytes of guest memory at `iova`; rejects when the peer fails. */
  read(iova: number, lengthBytes: number): Promise<Uint8Array>;
  /** Resolves once `bytes` are in guest memory at `iova`; rejects when the peer fails. */
  write(iova: number, bytes: Uint8Array): Promise<void>;
}

/** One guest-memory range reachable only through a `RemoteDmaAccessor`. */
export interface RemoteDmaRegion {
  /** First guest-physical address (IOVA) of the range. */
  readonly iova: number;
  readonly lengthBytes: number;
  readonly writable: boolean;
  readonly accessor: RemoteDmaAccessor;
}

/** Why a remote access failed. */
export type DmaRemoteErrorCode = "unmapped" | "read-only" | "transfer-failed";

/** Rejection reason of `readRemote` / `writeRemote`. */
export class DmaRemoteError extends Error {
  constructor(
    readonly code: DmaRemoteErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DmaRemoteError";
  }
}

export class Dma {
  private regions: DmaRegion[] = [];
  private last: DmaRegion | undefined;
  private loggers: DirtyLogger[] = [];
  private remotes: RemoteDmaRegion[] = [];

  /** Adds a range. Returns false (and changes nothing) if it overlaps an existing (direct or remote) range. */
  map(iova: number, bytes: Uint8Array, writable = true): boolean {
    const end = iova + bytes.byteLength;
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(end)) return false;
    for (const r of this.regions) {
      if (iova < r.iova + r.bytes.byteLength && r.iova < end) return false;
    }
    if (this.overlapsRemote(iova, end)) return false;
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

  /** Removes every range, direct and remote. */
  unmapAll(): void {
    this.regions = [];
    this.last = undefined;
    this.remotes = [];
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

  // ---------------------------------------------------------------- remote ranges (asynchronous access)

  /**
   * Adds a range reachable only through `accessor`, `lengthBytes` > 0. Returns false (and changes
   * nothing) if it overlaps an existing (direct or remote) range or is not representable.
   */
  mapRemote(iova: number, lengthBytes: number, accessor: RemoteDmaAccessor, writable = true): boolean {
    const end = iova + lengthBytes;
    if (!Number.isSafeInteger(iova) || iova < 0 || !Number.isSafeInteger(end) || lengthBytes <= 0)
      return false;
    for (const r of this.regions) {
      if (iova < r.iova + r.bytes.byteLength && r.iova < end) return false;
    }
    if (this.overlapsRemote(iova, end)) return false;
    this.remotes = [...this.remotes, { iova, lengthBytes, writable, accessor }].sort(
      (a, b) => a.iova - b.iova,
    );
    return true;
  }

  /** Removes the remote range that starts at `iova` with exactly `lengthBytes`. False if none matches. */
  unmapRemote(iova: number, lengthBytes: number): boolean {
    const i = this.remotes.findIndex((r) => r.iova === iova && r.lengthBytes === lengthBytes);
    if (i < 0) return false;
    this.remotes = this.remotes.filter((_, j) => j !== i);
    return true;
  }

  /** The remote ranges, in address order. */
  remoteRanges(): readonly RemoteDmaRegion[] {
    return this.remotes;
  }

  /** True while at least one remote range is mapped. */
  get hasRemote(): boolean {
    return this.remotes.length > 0;
  }

  /** Remote region containing the whole range, or undefined. */
  findRemote(iova: number, lengthBytes: number): RemoteDmaRegion | undefined {
    for (const r of this.remotes) {
      if (iova >= r.iova && iova + lengthBytes <= r.iova + r.lengthBytes) return r;
    }
    return undefined;
  }

  /**
   * Reads `lengthBytes` (> 0) of a remote range. Rejects with `DmaRemoteError`: `unmapped` when the
   * range does not lie wholly inside one remote range, `transfer-failed` (cause: the accessor's error)
   * when the peer fails or answers with another length.
   */
  readRemote(iova: number, lengthBytes: number): Promise<Uint8Array> {
    const r = this.findRemote(iova, lengthBytes);
    if (r === undefined || lengthBytes <= 0) return Promise.reject(unmappedError(iova, lengthBytes));
    return r.accessor.read(iova, lengthBytes).then(
      (data) => {
        if (data.byteLength !== lengthBytes) {
          throw new DmaRemoteError(
            "transfer-failed",
            `remote read of [${iova}, +${lengthBytes}) returned ${data.byteLength} bytes`,
          );
        }
        return data;
      },
      (cause: unknown) => {
        throw new DmaRemoteError("transfer-failed", `remote read of [${iova}, +${lengthBytes}) failed`, {
          cause,
        });
      },
    );
  }

  /**
   * Writes `bytes` (non-empty) into a remote range; the range is dirty-logged when the write settles,
   * whatever its outcome. Rejects with `DmaRemoteError`: `unmapped`, `read-only` (nothing sent, nothing
   * logged), `transfer-failed` (cause: the accessor's error).
   */
  writeRemote(iova: number, bytes: Uint8Array): Promise<void> {
    const n = bytes.byteLength;
    const r = this.findRemote(iova, n);
    if (r === undefined || n === 0) return Promise.reject(unmappedError(iova, n));
    if (!r.writable) {
      return Promise.reject(new DmaRemoteError("read-only", `remote range at ${r.iova} is read-only`));
    }
    return r.accessor.write(iova, bytes).then(
      () => this.logWrite(iova, n),
      (cause: unknown) => {
        this.logWrite(iova, n);
        throw new DmaRemoteError("transfer-failed", `remote write of [${iova}, +${n}) failed`, { cause });
      },
    );
  }

  private overlapsRemote(iova: number, end: number): boolean {
    for (const r of this.remotes) if (iova < r.iova + r.lengthBytes && r.iova < end) return true;
    return false;
  }

  logWrite(iova: number, lengthBytes: number): void {
    const ls = this.loggers;
    for (let i = 0; i < ls.length; i++) ls[i]!.logWrite(iova, lengthBytes);
  }
}

function unmappedError(iova: number, lengthBytes: number): DmaRemoteError {
  return new DmaRemoteError("unmapped", `[${iova}, +${lengthBytes}) is not inside one remote range`);
}
