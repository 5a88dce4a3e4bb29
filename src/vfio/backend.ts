/**
 * What a variant driver implements so that `MigrationPortal` can expose one controlled function.
 *
 * The portal owns the uAPI: feature envelopes, the next-hop walk, the state lock, session lifetime
 * (which arc opens, continues, ends a session), EOS rules, reset. The driver owns only device effects:
 *
 *   MigrationBackend   — perform ONE primitive arc; estimate stop_copy_length; forget migration state on
 *                        reset.
 *   SavingSession      — the byte stream of one saving data_fd (pre-copy and/or stop-copy phase).
 *   ResumingSession    — the byte sink of one resuming data_fd, plus its final commit.
 *   DmaLoggingBackend  — device DMA write logging (`DirtyPageBitmap` is a ready generic one).
 *
 * Contract rules (the portal enforces them; a violation is our bug and throws `VfioPortalError`):
 * - `arc(from, to)` is only called for an arc listed in `ARCS` whose both ends the device supports, one
 *   at a time, never concurrently with another call of the same portal (reads, writes, commit, dataSize,
 *   reset included), and never while a reset is being applied. DmaLoggingBackend calls are serialized
 *   among themselves but may overlap migration calls (logging is independent of the device state).
 * - An arc whose `ARCS` entry has `session: "open-saving"` must return `{ ok: true, session }` with a
 *   `SavingSession`; `"open-resuming"` a `ResumingSession`; every other arc returns no session.
 * - On `"continue-saving"` arcs (PRE_COPY(_P2P) → STOP_COPY, PRE_COPY ⇄ PRE_COPY_P2P) the same session
 *   object keeps serving reads; it is the driver's job to make it produce the final state after
 *   → STOP_COPY (the arc itself is the signal).
 * - The portal calls `close()` on a session exactly once, when the session ends: leaving the saving group,
 *   RESUMING → STOP, entering ERROR, or reset. No call is made on a session after `close()`.
 * - RESUMING → STOP: the portal first calls `commit()` on the resuming session; only if that succeeds does
 *   it call `arc(RESUMING, STOP)` and then `close()`. A failed commit fails the SET; the device stays in
 *   RESUMING (session still open) unless the failure says `deviceError`.
 * - A failed arc leaves the device in `from` (session untouched) unless it says `deviceError: true`:
 *   then the portal enters ERROR and closes the session. Only `reset()` leaves ERROR.
 */
import type { MigState } from "./states.ts";

/** A value or a promise of it: backends may answer synchronously. */
export type Awaitable<T> = T | Promise<T>;

/** A failure of one step, as an errno. */
export interface StepFailure {
  readonly ok: false;
  /** Positive Linux errno (see `Errno`). */
  readonly errno: number;
  /** True if the device could not restore any valid state: the portal enters ERROR. */
  readonly deviceError: boolean;
}

/** Result of `MigrationBackend.arc`. */
export type ArcResult =
  | { readonly ok: true; readonly session?: SavingSession | ResumingSession }
  | StepFailure;

/** Result of `ResumingSession.commit`. */
export type CommitResult = { readonly ok: true } | StepFailure;

/** Result of `MigrationBackend.dataSize`. */
export type DataSizeResult =
  | { readonly ok: true; readonly stopCopyLength: bigint }
  | { readonly ok: false; readonly errno: number };

/** The migration side of a variant driver (one per controlled function). */
export interface MigrationBackend {
  /**
   * `VFIO_MIGRATION_*` bits (`MigFlag`): must include STOP_COPY; only the four combinations {SC},
   * {SC,P2P}, {SC,PRE}, {SC,P2P,PRE} exist. Read once when the portal is built.
   */
  readonly migrationFlags: number;
  /** Performs the device effect of exactly one primitive arc (see the contract above). */
  arc(from: MigState, to: MigState): Awaitable<ArcResult>;
  /**
   * `stop_copy_length`: estimate, in bytes, of what the STOP_COPY phase will produce from now. Must be
   * an upper bound of the bytes actually read in STOP_COPY. Callable in every state.
   */
  dataSize(): Awaitable<DataSizeResult>;
  /**
   * The function was reset (VFIO_DEVICE_RESET, guest FLR, hot reset): drop every migration resource
   * (suspension, tracking, buffers). The portal has already closed the sessions; afterwards the device
   * is RUNNING. Called from any state, ERROR included. Must not fail.
   */
  reset(): Awaitable<void>;
}

/** End of stream as seen by a saving session. */
export interface SavingEos {
  /**
   * "temporary": nothing to read now (pre-copy: initial and dirty bytes are both 0; stop-copy: the
   * final state is still being produced). "permanent": the stop-copy stream is complete.
   */
  readonly eos: "temporary" | "permanent";
}

/** Result of `SavingSession.read`: 1..maxBytes bytes, an end of stream, or an error. */
export type SavingReadResult = Uint8Array | SavingEos | { readonly errno: number };

/** `struct vfio_precopy_info` payload (bytes). */
export interface PrecopyInfo {
  /** Initial pre-copy bytes still to be read; starts non-zero, only decreases. */
  readonly initialBytes: bigint;
  /** Bytes of state changed since data already read; may grow and shrink. */
  readonly dirtyBytes: bigint;
}

/** The stream of one saving data_fd. */
export interface SavingSession {
  readonly kind: "saving";
  /**
   * Next bytes of the stream: 1..`maxBytes` (`maxBytes` ≥ 1). The returned bytes belong to the caller
   * from then on (do not reuse the buffer).
   */
  read(maxBytes: number): Awaitable<SavingReadResult>;
  /** Pre-copy sizes; only called while the device is in PRE_COPY or PRE_COPY_P2P. */
  precopyInfo(): Awaitable<PrecopyInfo | { readonly errno: number }>;
  /** The session ended (see the contract). Idempotent on the driver side. */
  close(): void;
}

/** The sink of one resuming data_fd. */
export interface ResumingSession {
  readonly kind: "resuming";
  /**
   * Appends bytes to the stream (write segmentation is not meaningful; `bytes` is only valid during the
   * call — copy what you keep). 0 or an errno: ENOMEM for input
   * beyond the device maximum, EOPNOTSUPP for an unknown mandatory record, EINVAL for bad framing.
   */
  write(bytes: Uint8Array): Awaitable<number>;
  /** Validates and loads everything written (RESUMING → STOP). A failure fails the SET. */
  commit(): Awaitable<CommitResult>;
  /** The session ended (see the contract). */
  close(): void;
}

/** One DMA logging range: `[iova, iova + length)`, bytes, u64. */
export interface DmaRange {
  readonly iova: bigint;
  readonly length: bigint;
}

/**
 * The ranges to log: a validated list (non-empty, aligned to the page size, no overlap, no overflow),
 * or "all" (vfio-user DMA_LOGGING_START with num_ranges 0: every address the device can write).
 */
export type DmaLoggingScope = readonly DmaRange[] | "all";

/** Device DMA write logging (VFIO DMA_LOGGING_START / STOP / REPORT). */
export interface DmaLoggingBackend {
  /**
   * Starts logging. `pageSize` is the caller's hint (a power of two); return the granularity actually
   * used (a power of two) or an errno. Never called while started (the portal answers EBUSY).
   */
  start(
    scope: DmaLoggingScope,
    pageSize: bigint,
  ): Awaitable<{ readonly pageSize: bigint } | { readonly errno: number }>;
  /** Stops logging and drops the log. Only called while started. */
  stop(): Awaitable<void>;
  /**
   * Reads and clears the log for `[iova, iova + length)` (validated: no overflow, length > 0) at
   * `pageSize` (a power of two ≥ 4096, maybe different from the start granularity). Returns a bitmap of
   * exactly `dmaBitmapBytes(length, pageSize)` bytes: bit n (of little-endian u64 word n/64) set if any
   * byte of `[iova + n·pageSize, iova + (n+1)·pageSize)` was written. Only called while started.
   */
  reportAndClear(
    iova: bigint,
    length: bigint,
    pageSize: bigint,
  ): Awaitable<Uint8Array | { readonly errno: number }>;
}
