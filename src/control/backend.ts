/**
 * The seam between the gRPC control plane (transport) and the device side (the host's controlling
 * function agent). The server validates, authenticates and authorizes every call, then calls ONE
 * backend method; the backend never sees protobuf types, chunking, CRCs or identities it did not ask
 * for. The device-side implementation lives elsewhere (it issues TP4159 admin commands on the PF).
 *
 * Rules for implementations:
 * - Every method is async; failures are thrown as `ControlError` (closed code set, see errors.ts).
 *   Anything else thrown is treated as a bug and reported as `internal`.
 * - `ctx.signal` aborts when the caller cancels or its deadline passes; long operations and the
 *   async iterables below should stop promptly (return/throw) when it fires.
 * - A method that throws must leave the function unchanged (no partial apply).
 * - Iterables passed IN by the transport (`writeNamespaceData` chunks) may throw a ControlError
 *   (`invalid-argument` for a malformed chunk, `cancelled`); let it propagate.
 *
 * Units: every size/offset/time carries its unit in its name. 64-bit quantities that can exceed
 * 2^53 (LBAs, IOVAs, byte lengths of address ranges) are `bigint`.
 */

/**
 * Run state of a function (FUNCTION_STATE_* in the proto). `unknown` is what a client reports for a
 * value it does not know (a newer server); backends never return it.
 */
export type FunctionState =
  | "running"
  | "suspending"
  | "suspended"
  | "resuming"
  | "offline"
  | "resetting"
  | "unknown";

/** One namespace attached to a function. */
export interface NamespaceInfo {
  nsid: number;
  /** NSZE: size in logical blocks. */
  sizeBlocks: bigint;
  /** Logical block size in bytes (512 or 4096 in this project). */
  lbaBytes: number;
}

/** One PCI function of the subsystem. */
export interface FunctionInfo {
  /** CNTLID (0..0xFFEF). */
  cntlid: number;
  /** SR-IOV VF number, 1-based; 0 = the PF. */
  vfNumber: number;
  /** PCI-style name, e.g. "0000:01:00.1". */
  pciName: string;
  state: FunctionState;
  /** I/O queue pairs currently created. */
  ioQueuePairs: number;
  namespaces: NamespaceInfo[];
}

/** A function's migration lease. */
export interface LeaseInfo {
  leaseId: string;
  cntlid: number;
  /** Authenticated identity of the holder. */
  holder: string;
  /** Free text from the holder. */
  description: string;
  /** Duration granted by the last acquire/renew, ms. */
  leaseMs: number;
  /** Expiry time, Unix epoch ms (server clock). */
  expiresAtUnixMs: number;
}

export interface FunctionDetails {
  function: FunctionInfo;
  /** Size of the state Get Controller State would return now, bytes (0 = unknown). */
  controllerStateBytes: bigint;
  userDataLogging: boolean;
  dirtyTracking: boolean;
  /** The lease, if one is held. */
  lease?: LeaseInfo;
}

/** STYPE of Migration Send / Suspend: 0 = notification, 1 = suspend. */
export type SuspendType = "notification" | "suspend";

export interface SuspendParams {
  cntlid: number;
  suspendType: SuspendType;
  /** DUDMQ: delete the User Data Migration Queue as part of the suspend. */
  deleteUdmq: boolean;
  /** Lease the caller claims to hold ("" = none). The backend decides whether one is required. */
  leaseId: string;
}

export interface ResumeParams {
  cntlid: number;
  leaseId: string;
}

export interface ControllerStateSelector {
  cntlid: number;
  /** CSVI: Controller State Version Index (0 = device default). */
  csvi: number;
  /** CSUUIDI: Controller State UUID Index (0 = none). */
  csuuidi: number;
}

export interface SetControllerStateParams extends ControllerStateSelector {
  leaseId: string;
  /** The complete state, already reassembled and CRC-checked by the transport. */
  state: Uint8Array;
}

/** ESA of a User Data Migration Queue entry (`unknown`: a value this client does not know). */
export type EntrySequence =
  | "none"
  | "first"
  | "last-logging-stopped"
  | "last-suspended"
  | "last-queue-full"
  | "unknown";

/** LBACIR of a User Data Migration Queue entry (`unknown`: a value this client does not know). */
export type LbaChangeInfo = "range-valid" | "all-changed" | "no-range" | "unknown";

/** One User Data Migration Queue entry (type 0). */
export interface ChangedLbaRange {
  nsid: number;
  slba: bigint;
  /** NLB, 0's based. */
  nlb: number;
  entrySequence: EntrySequence;
  changeInfo: LbaChangeInfo;
  /** DLBA: the range was deallocated. */
  deallocated: boolean;
}

export interface MemoryRange {
  iova: bigint;
  lengthBytes: bigint;
}

export interface StartDirtyTrackingParams {
  cntlid: number;
  /** Non-empty, non-overlapping, page aligned (validated by the transport). */
  ranges: MemoryRange[];
  /** Power of two >= 4096 (validated by the transport). */
  pageSizeBytes: bigint;
}

export interface ReportDirtyPagesParams {
  cntlid: number;
  iova: bigint;
  /** Multiple of pageSizeBytes, at most MAX_DIRTY_BITMAP_BYTES × 8 pages. */
  lengthBytes: bigint;
  pageSizeBytes: bigint;
}

/** Events of WatchEvents. */
export type ControlEvent =
  | {
      kind: "state-changed";
      cntlid: number;
      timeUnixMs: number;
      fromState: FunctionState;
      toState: FunctionState;
    }
  | { kind: "async-event"; cntlid: number; timeUnixMs: number; aet: number; aei: number; lid: number }
  | { kind: "lease-expired"; cntlid: number; timeUnixMs: number; leaseId: string; holder: string };

/** A sequenced event as it travels (the transport numbers events per watch stream if the backend does not). */
export type SequencedControlEvent = ControlEvent & { sequence: bigint };

export interface AcquireLeaseParams {
  cntlid: number;
  /** Authenticated identity of the caller (filled by the transport, not by the caller). */
  holder: string;
  /** Requested duration, ms; 0 = backend default. */
  leaseMs: number;
  description: string;
}

export interface RenewLeaseParams {
  cntlid: number;
  leaseId: string;
  /** Authenticated identity of the caller. */
  holder: string;
  /** 0 = the duration granted before. */
  leaseMs: number;
}

export interface ReleaseLeaseParams {
  cntlid: number;
  leaseId: string;
  holder: string;
}

export interface LbaRange {
  slba: bigint;
  /** NLB, 0's based. */
  nlb: number;
}

/** A run of whole logical blocks. */
export interface NamespaceDataChunk {
  slba: bigint;
  /** A whole number of logical blocks. */
  data: Uint8Array;
}

export interface ReadNamespaceDataParams {
  cntlid: number;
  nsid: number;
  /** Non-empty; streamed back in this order. */
  ranges: LbaRange[];
}

export interface NamespaceDataReader {
  lbaBytes: number;
  /** Blocks of the requested ranges, in order; chunks of any size (the transport re-splits). */
  chunks: AsyncIterable<NamespaceDataChunk>;
}

export interface WriteNamespaceDataParams {
  cntlid: number;
  nsid: number;
}

/** Per-call context the transport passes to every backend method. */
export interface CallContext {
  /** Authenticated identity (certificate identity, or the listener's configured local identity). */
  identity: string;
  /** Peer address as grpc-js reports it (for logs). */
  peer: string;
  /** Fires when the caller cancels, its deadline passes or the server shuts down. */
  signal: AbortSignal;
}

export interface ControlBackend {
  /** Every function of the subsystem (the transport filters by authorization). */
  listFunctions(ctx: CallContext): Promise<FunctionInfo[]>;
  describeFunction(cntlid: number, ctx: CallContext): Promise<FunctionDetails>;
  suspend(params: SuspendParams, ctx: CallContext): Promise<{ state: FunctionState }>;
  resume(params: ResumeParams, ctx: CallContext): Promise<{ state: FunctionState }>;
  /** The complete controller state (TP4159 header + sections); the transport chunks and CRCs it. */
  getControllerState(params: ControllerStateSelector, ctx: CallContext): Promise<Uint8Array>;
  /** Validate everything, then apply atomically; on any error change nothing. */
  setControllerState(params: SetControllerStateParams, ctx: CallContext): Promise<{ state: FunctionState }>;
  startUserDataLogging(cntlid: number, ctx: CallContext): Promise<void>;
  stopUserDataLogging(cntlid: number, ctx: CallContext): Promise<void>;
  /** UDMQ entries in queue order, in batches; ends after a "last-*" entry or when ctx.signal fires. */
  streamChangedLbaRanges(cntlid: number, ctx: CallContext): AsyncIterable<ChangedLbaRange[]>;
  startDirtyTracking(params: StartDirtyTrackingParams, ctx: CallContext): Promise<{ pageSizeBytes: bigint }>;
  /** Read-and-clear; returns ceil(pages / 8) bytes, bit i LSB-first = page i dirty. */
  reportDirtyPages(params: ReportDirtyPagesParams, ctx: CallContext): Promise<Uint8Array>;
  stopDirtyTracking(cntlid: number, ctx: CallContext): Promise<void>;
  resetFunction(params: ResumeParams, ctx: CallContext): Promise<{ state: FunctionState }>;
  /** Events of the given functions until ctx.signal fires. */
  watchEvents(cntlids: readonly number[] | "all", ctx: CallContext): AsyncIterable<ControlEvent>;
  acquireLease(params: AcquireLeaseParams, ctx: CallContext): Promise<LeaseInfo>;
  renewLease(params: RenewLeaseParams, ctx: CallContext): Promise<LeaseInfo>;
  releaseLease(params: ReleaseLeaseParams, ctx: CallContext): Promise<void>;
  readNamespaceData(params: ReadNamespaceDataParams, ctx: CallContext): Promise<NamespaceDataReader>;
  /** Writes the chunks as they arrive; returns the number of blocks written. */
  writeNamespaceData(
    params: WriteNamespaceDataParams,
    chunks: AsyncIterable<NamespaceDataChunk>,
    ctx: CallContext,
  ): Promise<{ blocksWritten: bigint }>;
}
