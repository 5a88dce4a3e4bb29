/**
 * What a `VfioUserServer` asks of the device it exports (one PCI function). The server owns the wire:
 * framing, negotiation, validation of every field against the limits below, the DMA map table and
 * error replies. The backend owns device behaviour and nothing about messages.
 *
 * Conventions
 * * Results: `0` = success, a positive errno (`Errno`) = failure sent back to the client.
 * * Any method may return a Promise; the server still handles commands strictly one after another
 *   (the next command starts when the previous reply was sent), while replies to server-initiated
 *   DMA keep flowing — so a backend may `await server.dmaRead()` inside a command.
 * * Backends must not throw; if one does, the server replies EIO and logs `backend-threw`.
 * * Fd ownership: fds handed to `dmaMap` / `setIrqs` belong to the backend **if it returns 0**;
 *   on any other result the server closes them. The backend closes them on `dmaUnmap`, on
 *   replacement, on `reset` where it drops them, and on `clientDetached`. The `mmapFd` of a region
 *   stays the backend's: the server only sends it (the peer gets a duplicate).
 *
 * Checks the server has done before calling:
 * * `regionRead`/`regionWrite`: index < `deviceInfo().numRegions`, `regionInfo(index)` defined with the
 *   READ/WRITE flag, 1 ≤ count ≤ max_data_xfer_size, offset + count ≤ region size.
 * * `setIrqs`: index < numIrqs, start + count ≤ `irqInfo(index).count` (except the "disable all"
 *   form start = count = 0 with DATA_NONE), fds.length = count for DATA_EVENTFD (or 0 = de-assign),
 *   no fds otherwise.
 * * `dmaMap`: flags ⊆ READ|WRITE and non-zero, size > 0, no overlap with an existing mapping, at most
 *   one fd. `dmaUnmap`: (iova, size) matches a mapping exactly.
 * * `migDataRead` / `migDataWrite`: size ≤ max_data_xfer_size.
 */

export type MaybePromise<T> = T | Promise<T>;

/** 0 on success, otherwise a positive errno value. */
export type Errno = number;

export interface DeviceInfo {
  /** `DeviceInfoFlag` bits (PCI, RESET). */
  flags: number;
  /** Number of regions, ≥ 9 for PCI (BAR0–5, ROM, CONFIG, VGA). */
  numRegions: number;
  /** Number of IRQ indexes, ≥ 5 for PCI (INTx, MSI, MSI-X, ERR, REQ). */
  numIrqs: number;
}

export interface SparseArea {
  /** Offset inside the region, bytes. */
  offset: number;
  sizeBytes: number;
}

export interface RegionDescription {
  /** `RegionFlag` bits READ / WRITE / MMAP (CAPS is set by the server when caps exist). */
  flags: number;
  /** Region size in bytes; 0 = region not implemented. */
  sizeBytes: number;
  /** Offset to give mmap for this region in `mmapFd`. Default 0. */
  mmapOffset?: number;
  /** Mappable sub-ranges (sparse-mmap capability). Omitted = whole region when MMAP is set. */
  sparseAreas?: readonly SparseArea[];
  /** fd the client may mmap (with MMAP). Owned by the backend; sent with the full reply only. */
  mmapFd?: number;
}

export interface IrqInfo {
  /** `IrqInfoFlag` bits. */
  flags: number;
  /** Number of vectors of this index (0 = not supported). */
  count: number;
}

export interface DmaMapping {
  /** IOVA of the first byte. */
  iova: number;
  sizeBytes: number;
  /** `DmaMapFlag` bits. */
  flags: number;
  /** Backing memory, if the client sent one: mmap or pread/pwrite `[fileOffset, fileOffset+sizeBytes)`. */
  fd?: number;
  /** Offset of the range in `fd` (0 without an fd). */
  fileOffset: number;
}

export interface SetIrqsRequest {
  index: number;
  /** `SetIrqsFlag` bits: one DATA_* and one ACTION_*. */
  flags: number;
  start: number;
  count: number;
  /** DATA_EVENTFD: `count` eventfds (sub-index start + i), or empty to de-assign. */
  fds: number[];
  /** DATA_BOOL: `count` bytes. */
  bools?: Uint8Array;
}

/** Outcome of a region write that has work to do once the reply is on the wire. */
export interface RegionWriteOutcome {
  errno: Errno;
  /**
   * Runs right after the reply was sent (or, for a posted write, after processing). Put DMA the write
   * triggers here (e.g. SQE fetch after a doorbell): a client may not serve DMA while it waits for the
   * reply of its own region access. Errors it throws or rejects with are logged (`backend-threw`).
   */
  afterReply?: () => MaybePromise<void>;
}

export type FeatureOutcome = { data: Uint8Array } | { errno: Errno };

export interface VfioUserDeviceBackend {
  deviceInfo(): DeviceInfo;
  /** Description of region `index`, or undefined when the index does not exist. */
  regionInfo(index: number): RegionDescription | undefined;
  /** Reads `count` bytes (a shorter result is a short read). */
  regionRead(index: number, offset: number, count: number): MaybePromise<Uint8Array | Errno>;
  regionWrite(index: number, offset: number, data: Uint8Array): MaybePromise<Errno | RegionWriteOutcome>;
  /** Info for IRQ index `index`, or undefined when it does not exist. */
  irqInfo(index: number): IrqInfo | undefined;
  setIrqs(request: SetIrqsRequest): MaybePromise<Errno>;
  reset(): MaybePromise<Errno>;
  dmaMap(mapping: DmaMapping): MaybePromise<Errno>;
  /** Drops every reference to the mapping (and closes its fd) before returning. */
  dmaUnmap(iova: number, sizeBytes: number): MaybePromise<Errno>;
  /**
   * DEVICE_FEATURE. `data` is the request data after the 8-byte envelope. Return the reply data:
   * for GET the feature data; for SET and PROBE the (possibly adjusted) request data.
   */
  feature(flags: number, data: Uint8Array): MaybePromise<FeatureOutcome>;
  /** Up to `sizeBytes` of migration data; fewer means "no more for now". */
  migDataRead(sizeBytes: number): MaybePromise<Uint8Array | Errno>;
  migDataWrite(bytes: Uint8Array): MaybePromise<Errno>;
  /** The client went away: drop every DMA mapping and IRQ fd it gave; keep device state. */
  clientDetached(): MaybePromise<void>;
}
