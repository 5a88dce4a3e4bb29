/**
 * The DMA map a vfio-user client gives one exported function, turned into the function's `Dma`:
 *
 *   DMA_MAP with an fd  → mmap [fileOffset, fileOffset + size) of it (MAP_SHARED; read-only unless the
 *                         map has WRITE) → `dma.map(iova, bytes, writable)`; the fd is closed once mapped
 *   DMA_MAP without fd  → a "message-only" range (QEMU maps ROM and BAR windows this way). With a
 *                         `remote` accessor (the export passes the server's DMA_READ / DMA_WRITE) it
 *                         becomes a remote range of the `Dma` (`dma.mapRemote`, writable with WRITE):
 *                         NVM Read / Write / Compare data there moves asynchronously. Without one it is
 *                         only recorded and such data ends with Data Transfer Error. Queues, PRP lists
 *                         and SGL segments there are never usable (the controller reads them directly).
 *   DMA_UNMAP           → `dma.unmap`, then munmap — unless a live submission/completion queue still
 *                         points into the mapping: then the mapping is left to the garbage collector
 *                         (the queue keeps working on the client's memory file instead of faulting).
 *                         A remote range: `dma.unmapRemote`; DMA_READ / DMA_WRITE already sent for it are
 *                         not recalled (the client answers them against its own map), later ones fail.
 *
 * Mappings larger than one ArrayBuffer can view (4 GiB on Node 20) become several consecutive
 * page-aligned windows; a single data segment that crosses a window edge fails like unmapped memory.
 *
 * Checks before mmap (a bad fd must not crash the device later): the fd is a regular file (memfd,
 * shm, hugetlbfs, plain file) and `fileOffset + size` lies within it — mmap past the end would raise
 * SIGBUS on first touch. A client that shrinks its file after mapping can still cause SIGBUS; that
 * is the limit of mmap-based DMA (libvfio-user has the same).
 */
import { fstatSync } from "node:fs";
import type { Dma, RemoteDmaAccessor } from "../memory/dma.ts";
import { maxMappingBytes, NativeError, pageSize } from "../native/addon.ts";
import { type MappedRange, mapFdRange } from "../native/guest-memory-fd.ts";
import type { DmaMapping, Errno } from "../vfio-user/device-backend.ts";
import { DmaMapFlag, Errno as E } from "../vfio-user/protocol/constants.ts";

/** A range the client mapped without an fd (only reachable through DMA_READ/DMA_WRITE messages). */
export interface MessageOnlyRange {
  iova: number;
  sizeBytes: number;
  /** `DmaMapFlag` bits. */
  flags: number;
}

interface Window {
  iova: number;
  range: MappedRange;
}

interface MapRecord extends MessageOnlyRange {
  /** Empty for a message-only range. */
  windows: Window[];
  /** A message-only range entered in the `Dma` as a remote range. */
  remote: boolean;
}

export type ClientDmaEvent =
  | { name: "dma-mapped"; iova: number; sizeBytes: number; windows: number }
  | { name: "dma-message-only"; iova: number; sizeBytes: number; remote: boolean }
  | { name: "dma-map-refused"; iova: number; sizeBytes: number; errno: number; detail: string }
  | { name: "dma-unmapped"; iova: number; sizeBytes: number }
  | { name: "dma-unmap-deferred"; iova: number; sizeBytes: number };

export interface ClientDmaMapOptions {
  /** Closes an fd this object owns. */
  closeFd: (fd: number) => void;
  /** True while the controller still uses `buffer` (a queue lives in it): munmap is then left to GC. */
  inUse: (buffer: ArrayBuffer) => boolean;
  /** Largest window per mapping, bytes. Default `maxMappingBytes()` rounded down to a page; ≥ 1 page. */
  maxWindowBytes?: number;
  /** Receives what happens (for the export's log). Default: discarded. */
  onEvent?: (e: ClientDmaEvent) => void;
  /**
   * Reaches fd-less ranges (DMA_READ / DMA_WRITE to the client); they become remote ranges of the
   * `Dma`. Default none: fd-less ranges are recorded only.
   */
  remote?: RemoteDmaAccessor;
}

export class ClientDmaMap {
  readonly #records = new Map<string, MapRecord>();
  readonly #windowBytes: number;

  constructor(
    private readonly dma: Dma,
    private readonly o: ClientDmaMapOptions,
  ) {
    const page = pageSize();
    const max = o.maxWindowBytes ?? maxMappingBytes();
    this.#windowBytes = Math.max(page, Math.floor(max / page) * page);
  }

  /** Ranges recorded without memory behind them (fd-less maps). */
  messageOnlyRanges(): MessageOnlyRange[] {
    return [...this.#records.values()]
      .filter((r) => r.windows.length === 0)
      .map((r) => ({ iova: r.iova, sizeBytes: r.sizeBytes, flags: r.flags }));
  }

  /** Number of mappings held (with or without memory). */
  get size(): number {
    return this.#records.size;
  }

  /** DMA_MAP. On 0 the fd (if any) was taken (and already closed); otherwise it is still the caller's. */
  map(m: DmaMapping): Errno {
    const key = keyOf(m.iova, m.sizeBytes);
    if (this.#records.has(key)) return E.EEXIST;
    const record: MapRecord = {
      iova: m.iova,
      sizeBytes: m.sizeBytes,
      flags: m.flags,
      windows: [],
      remote: false,
    };
    const refuse = (errno: number, detail: string): Errno => {
      this.o.onEvent?.({ name: "dma-map-refused", iova: m.iova, sizeBytes: m.sizeBytes, errno, detail });
      return errno;
    };
    if (m.fd === undefined) {
      const remote = this.o.remote;
      if (remote !== undefined) {
        const writable = (m.flags & DmaMapFlag.WRITE) !== 0;
        if (!this.dma.mapRemote(m.iova, m.sizeBytes, remote, writable)) {
          return refuse(E.EEXIST, "overlaps memory the function already maps");
        }
        record.remote = true;
      }
      this.#records.set(key, record);
      this.o.onEvent?.({
        name: "dma-message-only",
        iova: m.iova,
        sizeBytes: m.sizeBytes,
        remote: record.remote,
      });
      return 0;
    }
    let fileBytes: number;
    try {
      const st = fstatSync(m.fd);
      if (!st.isFile()) return refuse(E.EINVAL, "fd is not a regular file (memfd, shm or file expected)");
      fileBytes = st.size;
    } catch {
      return refuse(E.EBADF, "fstat failed");
    }
    if (m.fileOffset + m.sizeBytes > fileBytes) {
      return refuse(E.EINVAL, `range ends at ${m.fileOffset + m.sizeBytes}, file has ${fileBytes} bytes`);
    }
    const writable = (m.flags & DmaMapFlag.WRITE) !== 0;
    for (let off = 0; off < m.sizeBytes; off += this.#windowBytes) {
      const len = Math.min(this.#windowBytes, m.sizeBytes - off);
      let range: MappedRange;
      try {
        range = mapFdRange(m.fd, m.fileOffset + off, len, writable);
      } catch (e) {
        this.#drop(record, true);
        const errno = e instanceof NativeError && e.errno > 0 ? e.errno : E.EIO;
        return refuse(errno, `mmap failed: ${String(e)}`);
      }
      if (!this.dma.map(m.iova + off, range.bytes, writable)) {
        range.unmap();
        this.#drop(record, true);
        return refuse(E.EEXIST, "overlaps memory the function already maps");
      }
      record.windows.push({ iova: m.iova + off, range });
    }
    this.o.closeFd(m.fd); // the mapping outlives the fd
    this.#records.set(key, record);
    this.o.onEvent?.({
      name: "dma-mapped",
      iova: m.iova,
      sizeBytes: m.sizeBytes,
      windows: record.windows.length,
    });
    return 0;
  }

  /** DMA_UNMAP of exactly one earlier mapping; ENOENT if there is none. */
  unmap(iova: number, sizeBytes: number): Errno {
    const key = keyOf(iova, sizeBytes);
    const record = this.#records.get(key);
    if (record === undefined) return E.ENOENT;
    this.#records.delete(key);
    this.#drop(record, false);
    return 0;
  }

  /** Drops every mapping (client gone). */
  unmapAll(): void {
    for (const r of this.#records.values()) this.#drop(r, false);
    this.#records.clear();
  }

  #drop(record: MapRecord, failedMap: boolean): void {
    if (record.remote) this.dma.unmapRemote(record.iova, record.sizeBytes);
    record.remote = false;
    let deferred = false;
    for (const w of record.windows) {
      this.dma.unmap(w.iova, w.range.bytes.byteLength);
      if (!failedMap && this.o.inUse(w.range.buffer)) deferred = true;
      else w.range.unmap();
    }
    record.windows = [];
    if (failedMap) return;
    const e = { iova: record.iova, sizeBytes: record.sizeBytes };
    this.o.onEvent?.(deferred ? { name: "dma-unmap-deferred", ...e } : { name: "dma-unmapped", ...e });
  }
}

function keyOf(iova: number, sizeBytes: number): string {
  return `${iova}:${sizeBytes}`;
}
