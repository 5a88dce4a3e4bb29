/**
 * `MigrationPortal`: the VFIO migration v2 portal of one controlled function — what the kernel's
 * vfio-pci core plus a variant driver expose for a VF, minus the file descriptors.
 *
 * ```
 *  VMM / transport                MigrationPortal                         variant driver (backend)
 *  ───────────────                ───────────────                         ────────────────────────
 *  SET MIG_DEVICE_STATE(t) ──►  lock; walk nextHop(cur, t):
 *                                 per hop: [RESUMING→STOP: commit()] ──►  session.commit()
 *                                          arc(cur, hop)             ──►  arc(cur, hop) → ok/session | errno
 *                                          session open/continue/end ──►  session.close() on end
 *                                          (reset pending? apply, EINTR)
 *                        ◄──  { ok, session? } | { errno, reachedState }
 *  read/write data     ──►  lock; EOS/errno rules               ──►  session.read / write
 *  DMA logging         ──►  validate (EINVAL/E2BIG/EOVERFLOW/EBUSY) ──► start / stop / reportAndClear
 *  reset()             ──►  deferred to the end of the current step ──► sessions closed, backend.reset()
 * ```
 *
 * Compatibility rule: the numbers, payload layouts and errno results are the Linux uAPI's (VFIO v2,
 * `include/uapi/linux/vfio.h`); where the kernel leaves a choice (e.g. the errno of a killed session)
 * we pick what upstream variant drivers do and say so. vfio-user peers see the same FSM.
 *
 * Serialisation: state transitions, data reads/writes, PRECOPY_INFO, MIG_DATA_SIZE and reset run one at
 * a time, FIFO, on one lock; DMA logging has its own lock (it is independent of the device state).
 * `getState()` is a synchronous snapshot (it may show an intermediate hop of a SET in flight);
 * `readState()` waits for the lock like the kernel's GET does.
 *
 * Reset (`reset()`): from any state, ERROR included, the device ends in RUNNING with every session dead
 * (handles answer ENODEV). A reset requested while a step is in flight is applied when that step (one
 * arc, one read, …) returns; a SET it interrupts fails with EINTR, reachedState RUNNING. DMA logging is
 * left as it is.
 */
import type {
  Awaitable,
  DmaLoggingBackend,
  DmaLoggingScope,
  MigrationBackend,
  ResumingSession,
  SavingSession,
} from "./backend.ts";
import {
  DataSession,
  type IoctlResult,
  type PrecopyInfoResult,
  type ReadResult,
  type SessionIo,
  type WriteResult,
} from "./data-session.ts";
import { type FeatureCallOptions, type FeatureResult, runDeviceFeature } from "./device-feature.ts";
import {
  DMA_LOGGING_MAX_BITMAP_BYTES,
  dmaBitmapBytes,
  isPowerOfTwo,
  isU64,
  orInto,
  validateLoggingReport,
  validateLoggingStart,
} from "./dma-logging.ts";
import { emitVfioEvent, VfioEvent } from "./events.ts";
import { decodePrecopyInfo, encodePrecopyInfo, PRECOPY_INFO_BYTES } from "./feature-codec.ts";
import { findArc, isPreCopyState, isStateSupported, isValidMigrationFlags, nextHop } from "./next-hop.ts";
import { SerialLock } from "./serial-lock.ts";
import { Errno, MigState, migStateName, VFIO_MIG_GET_PRECOPY_INFO } from "./states.ts";
import { VfioPortalError } from "./vfio-error.ts";

export interface MigrationPortalOptions {
  /** Migration side of the variant driver. Default: none — migration features answer ENOTTY. */
  readonly migration?: MigrationBackend;
  /** Device DMA logging. Default: none — DMA logging features answer ENOTTY. */
  readonly dmaLogging?: DmaLoggingBackend;
  /** Label carried as `fn` in events (e.g. `"vf1"`). Default `"vfio"`. */
  readonly label?: string;
}

export type SetStateResult =
  | {
      readonly ok: true;
      /** The new data session iff the last arc opened one (the kernel's data_fd). */
      readonly session?: DataSession;
    }
  | {
      readonly ok: false;
      readonly errno: number;
      /** Where the device is now: the start state, an intermediate hop, ERROR, or RUNNING after a reset. */
      readonly reachedState: MigState;
    };

export type DataSizeAnswer =
  | { readonly ok: true; readonly stopCopyLength: bigint }
  | { readonly ok: false; readonly errno: number };
export type DmaStartAnswer =
  | { readonly ok: true; readonly pageSize: bigint }
  | { readonly ok: false; readonly errno: number };
export type DmaAnswer = { readonly ok: true } | { readonly ok: false; readonly errno: number };

interface SessionRecord {
  readonly handle: DataSession;
  readonly saving: SavingSession | undefined;
  readonly resuming: ResumingSession | undefined;
  alive: boolean;
  /** STOP_COPY reached its permanent end of stream: further reads return 0 bytes without the driver. */
  permanentEos: boolean;
}

interface ResetWaiter {
  resolve(): void;
  reject(e: unknown): void;
}

const { ERROR, RUNNING, STOP_COPY } = MigState;

export class MigrationPortal {
  readonly label: string;
  /** `VFIO_MIGRATION_*` bits (0 when the function has no migration backend). */
  readonly migrationFlags: number;
  private readonly migration: MigrationBackend | undefined;
  private readonly dmaLogging: DmaLoggingBackend | undefined;

  private state: MigState = RUNNING;
  private current: SessionRecord | undefined;
  private nextSessionId = 1;
  private readonly lock = new SerialLock();
  private resetPending = false;
  private resetWaiters: ResetWaiter[] = [];

  private readonly dmaLock = new SerialLock();
  private loggingPageSize: bigint | undefined;

  private readonly io: SessionIo;

  constructor(options: MigrationPortalOptions) {
    this.label = options.label ?? "vfio";
    this.migration = options.migration;
    this.dmaLogging = options.dmaLogging;
    if (this.migration !== undefined) {
      const flags = this.migration.migrationFlags;
      if (!isValidMigrationFlags(flags)) {
        throw new VfioPortalError("invalid-backend", `migration flags ${flags} (STOP_COPY is mandatory)`);
      }
      this.migrationFlags = flags;
    } else {
      this.migrationFlags = 0;
    }
    this.io = {
      isAlive: (s) => this.current?.handle === s && this.current.alive,
      read: (s, maxBytes, offset) => this.sessionRead(s, maxBytes, offset),
      write: (s, bytes, offset) => this.sessionWrite(s, bytes, offset),
      precopyInfo: (s) => this.sessionPrecopyInfo(s),
      ioctl: (s, cmd, arg) => this.sessionIoctl(s, cmd, arg),
    };
  }

  /** True if the function has migration ops (MIGRATION, MIG_DEVICE_STATE, MIG_DATA_SIZE features). */
  get hasMigration(): boolean {
    return this.migration !== undefined;
  }

  /** True if the function has DMA logging ops (DMA_LOGGING_* features). */
  get hasDmaLogging(): boolean {
    return this.dmaLogging !== undefined;
  }

  /** Current device state (synchronous snapshot; may be an intermediate hop of a SET in flight). */
  getState(): MigState {
    return this.state;
  }

  /** Same as `getState()`, but `deviceState` reads like the uAPI field. */
  get deviceState(): MigState {
    return this.state;
  }

  /** The device state once every queued step (SET, read, reset …) before this call has finished. */
  readState(): Promise<MigState> {
    return this.locked(async () => this.state);
  }

  /** The live data session, if any. */
  get session(): DataSession | undefined {
    return this.current?.alive ? this.current.handle : undefined;
  }

  /** Granularity chosen at DMA_LOGGING_START, or undefined when logging is off. */
  get dmaLoggingPageSize(): bigint | undefined {
    return this.loggingPageSize;
  }

  // ───────────────────────────── MIG_DEVICE_STATE ─────────────────────────────

  /**
   * SET MIG_DEVICE_STATE: walks the next-hop path to `target`, one primitive arc at a time.
   * `target` equal to the current state: success, no work. ENOTTY without a migration backend; EINVAL
   * for an unsupported or ERROR target, from ERROR, and for STOP_COPY → PRE_COPY(_P2P); a driver errno
   * when an arc fails (reachedState says where the device is); EINTR if a reset intervened.
   */
  setState(target: number): Promise<SetStateResult> {
    const m = this.migration;
    if (m === undefined) return Promise.resolve(this.failSet(target, Errno.ENOTTY));
    return this.locked(() => this.walk(m, target));
  }

  private async walk(m: MigrationBackend, target: number): Promise<SetStateResult> {
    if (!isStateSupported(target, this.migrationFlags)) return this.failSet(target, Errno.EINVAL);
    let opened: SessionRecord | undefined;
    while (this.state !== target) {
      const from = this.state;
      const hop = nextHop(from, target, this.migrationFlags);
      if (typeof hop !== "number") return this.failSet(target, hop.errno);
      const arc = findArc(from, hop);
      if (arc === undefined) throw new Error(`next-hop table yields ${from}→${hop}, which is no arc`); // our bug

      if (arc.session === "end-resuming") {
        const rec = this.current;
        if (rec?.resuming === undefined || !rec.alive) throw new Error("RESUMING without a resuming session");
        const resuming = rec.resuming;
        const c = await this.step(from, hop, "commit", () => resuming.commit());
        if (!c.ok) return this.failStep(target, from, hop, c.errno, c.deviceError);
      }

      const r = await this.step(from, hop, "arc", () => m.arc(from, hop));
      if (!r.ok) return this.failStep(target, from, hop, r.errno, r.deviceError);

      // Session effect of the arc.
      const s = r.session;
      switch (arc.session) {
        case "open-saving":
        case "open-resuming": {
          const want = arc.session === "open-saving" ? "saving" : "resuming";
          if (s?.kind !== want) {
            this.enterError(from, hop, Errno.EIO);
            throw new VfioPortalError(
              "backend-contract",
              `arc ${name(from, hop)} must return a ${want} session`,
            );
          }
          if (this.current !== undefined) throw new Error("session opened while another is open"); // our bug
          opened = this.openSession(s);
          break;
        }
        default:
          if (s !== undefined) {
            this.enterError(from, hop, Errno.EIO);
            throw new VfioPortalError("backend-contract", `arc ${name(from, hop)} must not return a session`);
          }
          if (
            (arc.session === "end-saving" || arc.session === "end-resuming") &&
            this.current !== undefined
          ) {
            this.killSession(this.current);
          }
      }
      this.state = hop;
      emitVfioEvent(VfioEvent.arc, this.label, { from, to: hop });

      if (arc.createsSession && hop !== target) {
        // The table never opens a session mid-path; kept as the kernel keeps it.
        if (this.current !== undefined) this.killSession(this.current);
        return this.failSet(target, Errno.EINVAL);
      }
      if (this.resetPending) {
        await this.applyPendingReset();
        return this.failSet(target, Errno.EINTR);
      }
    }
    return opened === undefined ? { ok: true } : { ok: true, session: opened.handle };
  }

  /** Runs one backend step of a transition; a throw is our bug: the device is then in ERROR. */
  private async step<T>(from: MigState, to: MigState, what: string, f: () => Awaitable<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      this.enterError(from, to, Errno.EIO);
      throw new VfioPortalError("backend-threw", `${what} ${name(from, to)} threw`, { cause: e });
    }
  }

  private failStep(
    target: number,
    from: MigState,
    to: MigState,
    errno: number,
    deviceError: boolean,
  ): SetStateResult {
    if (deviceError) this.enterError(from, to, errno);
    return this.failSet(target, errno);
  }

  private failSet(target: number, errno: number): SetStateResult {
    emitVfioEvent(VfioEvent.setFailed, this.label, {
      target,
      targetName: migStateName(target),
      errno,
      reachedState: this.state,
    });
    return { ok: false, errno, reachedState: this.state };
  }

  private enterError(from: MigState, to: MigState, errno: number): void {
    if (this.current !== undefined) this.killSession(this.current);
    this.state = ERROR;
    emitVfioEvent(VfioEvent.errorEntered, this.label, { from, to, errno });
  }

  private openSession(s: SavingSession | ResumingSession): SessionRecord {
    const handle = new DataSession(this.nextSessionId++, s.kind, this.io);
    const rec: SessionRecord = {
      handle,
      saving: s.kind === "saving" ? s : undefined,
      resuming: s.kind === "resuming" ? s : undefined,
      alive: true,
      permanentEos: false,
    };
    this.current = rec;
    emitVfioEvent(VfioEvent.sessionOpened, this.label, { session: handle.id, kind: s.kind });
    return rec;
  }

  private killSession(rec: SessionRecord): void {
    rec.alive = false;
    if (this.current === rec) this.current = undefined;
    emitVfioEvent(VfioEvent.sessionClosed, this.label, { session: rec.handle.id, kind: rec.handle.kind });
    try {
      (rec.saving ?? rec.resuming)?.close();
    } catch (e) {
      throw new VfioPortalError("backend-threw", "session close threw", { cause: e });
    }
  }

  // ───────────────────────────── reset ─────────────────────────────

  /**
   * VFIO_DEVICE_RESET / guest FLR: from any state → RUNNING, sessions dead, `backend.reset()` called.
   * Resolves once applied (after the step in flight, if any).
   */
  reset(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.resetWaiters.push({ resolve, reject });
    });
    this.resetPending = true;
    // Applied by whichever holder of the lock looks first; this empty task guarantees someone does.
    this.locked(async () => {}).catch(() => {});
    return done;
  }

  private locked<T>(task: () => Promise<T>): Promise<T> {
    return this.lock.run(async () => {
      await this.applyPendingReset();
      try {
        return await task();
      } finally {
        await this.applyPendingReset();
      }
    });
  }

  private async applyPendingReset(): Promise<void> {
    while (this.resetPending) {
      this.resetPending = false;
      const waiters = this.resetWaiters.splice(0);
      const from = this.state;
      try {
        const rec = this.current;
        this.state = RUNNING;
        if (rec !== undefined) this.killSession(rec);
        if (this.migration !== undefined) await this.migration.reset();
      } catch (e) {
        this.state = RUNNING;
        const err = VfioPortalError.is(e)
          ? e
          : new VfioPortalError("backend-threw", "reset threw", { cause: e });
        for (const w of waiters) w.reject(err);
        throw err;
      }
      emitVfioEvent(VfioEvent.resetApplied, this.label, { from });
      for (const w of waiters) w.resolve();
    }
  }

  // ───────────────────────────── data sessions ─────────────────────────────

  /**
   * Reads from the current saving session (vfio-user MIG_DATA_READ). EINVAL when there is none (wrong
   * state); otherwise as `DataSession.read`.
   */
  readData(maxBytes: number): Promise<ReadResult> {
    const rec = this.current;
    if (rec === undefined || rec.saving === undefined)
      return Promise.resolve(this.ioFail(undefined, "read", Errno.EINVAL));
    return this.sessionRead(rec.handle, maxBytes, undefined);
  }

  /** Writes to the current resuming session (vfio-user MIG_DATA_WRITE). EINVAL when there is none. */
  writeData(bytes: Uint8Array): Promise<WriteResult> {
    const rec = this.current;
    if (rec === undefined || rec.resuming === undefined)
      return Promise.resolve(this.ioFail(undefined, "write", Errno.EINVAL));
    return this.sessionWrite(rec.handle, bytes, undefined);
  }

  /** VFIO_MIG_GET_PRECOPY_INFO on the current session: EINVAL outside PRE_COPY / PRE_COPY_P2P. */
  precopyInfo(): Promise<PrecopyInfoResult> {
    const rec = this.current;
    if (rec === undefined || rec.saving === undefined)
      return Promise.resolve(this.ioFail(undefined, "precopy-info", Errno.EINVAL));
    return this.sessionPrecopyInfo(rec.handle);
  }

  private recordOf(s: DataSession): SessionRecord | undefined {
    const rec = this.current;
    return rec !== undefined && rec.handle === s && rec.alive ? rec : undefined;
  }

  private ioFail(s: DataSession | undefined, op: string, errno: number): { ok: false; errno: number } {
    emitVfioEvent(VfioEvent.sessionIoFailed, this.label, { session: s?.id, op, errno });
    return { ok: false, errno };
  }

  private sessionRead(s: DataSession, maxBytes: number, offset: bigint | undefined): Promise<ReadResult> {
    if (offset !== undefined) return Promise.resolve(this.ioFail(s, "read", Errno.ESPIPE));
    if (s.kind !== "saving") return Promise.resolve(this.ioFail(s, "read", Errno.EBADF));
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0)
      return Promise.resolve(this.ioFail(s, "read", Errno.EINVAL));
    return this.locked(async (): Promise<ReadResult> => {
      const rec = this.recordOf(s);
      if (rec?.saving === undefined) return this.ioFail(s, "read", Errno.ENODEV);
      if (rec.permanentEos || maxBytes === 0) return { ok: true, bytes: new Uint8Array(0) };
      const saving = rec.saving;
      const r = await this.call("read", () => saving.read(maxBytes));
      if (r instanceof Uint8Array) {
        if (r.length === 0 || r.length > maxBytes) {
          throw new VfioPortalError(
            "backend-contract",
            `read returned ${r.length} bytes for maxBytes ${maxBytes}`,
          );
        }
        return { ok: true, bytes: r };
      }
      if ("errno" in r) return this.ioFail(s, "read", r.errno);
      if (this.state === STOP_COPY) {
        if (r.eos === "temporary") return this.ioFail(s, "read", Errno.EAGAIN);
        rec.permanentEos = true;
        return { ok: true, bytes: new Uint8Array(0) };
      }
      // PRE_COPY*: the only end of stream is the temporary one.
      return this.ioFail(s, "read", Errno.ENOMSG);
    });
  }

  private sessionWrite(s: DataSession, bytes: Uint8Array, offset: bigint | undefined): Promise<WriteResult> {
    if (offset !== undefined) return Promise.resolve(this.ioFail(s, "write", Errno.ESPIPE));
    if (s.kind !== "resuming") return Promise.resolve(this.ioFail(s, "write", Errno.EBADF));
    return this.locked(async (): Promise<WriteResult> => {
      const rec = this.recordOf(s);
      if (rec?.resuming === undefined) return this.ioFail(s, "write", Errno.ENODEV);
      if (bytes.length === 0) return { ok: true, written: 0 };
      const resuming = rec.resuming;
      const e = await this.call("write", () => resuming.write(bytes));
      if (e !== 0) return this.ioFail(s, "write", e);
      return { ok: true, written: bytes.length };
    });
  }

  private sessionPrecopyInfo(s: DataSession): Promise<PrecopyInfoResult> {
    if (s.kind !== "saving") return Promise.resolve(this.ioFail(s, "precopy-info", Errno.ENOTTY));
    return this.locked(async (): Promise<PrecopyInfoResult> => {
      if (!isPreCopyState(this.state)) return this.ioFail(s, "precopy-info", Errno.EINVAL);
      const rec = this.recordOf(s);
      if (rec?.saving === undefined) return this.ioFail(s, "precopy-info", Errno.ENODEV);
      const saving = rec.saving;
      const r = await this.call("precopyInfo", () => saving.precopyInfo());
      if ("errno" in r) return this.ioFail(s, "precopy-info", r.errno);
      if (!isU64(r.initialBytes) || !isU64(r.dirtyBytes)) {
        throw new VfioPortalError("backend-contract", "precopyInfo sizes must be u64");
      }
      return { ok: true, initialBytes: r.initialBytes, dirtyBytes: r.dirtyBytes };
    });
  }

  private async sessionIoctl(s: DataSession, cmd: number, arg: Uint8Array): Promise<IoctlResult> {
    if (cmd !== VFIO_MIG_GET_PRECOPY_INFO) return this.ioFail(s, "ioctl", Errno.ENOTTY);
    if (s.kind !== "saving") return this.ioFail(s, "ioctl", Errno.ENOTTY);
    if (arg.length < PRECOPY_INFO_BYTES) return this.ioFail(s, "ioctl", Errno.EFAULT);
    const req = decodePrecopyInfo(arg);
    if (req.argsz < PRECOPY_INFO_BYTES) return this.ioFail(s, "ioctl", Errno.EINVAL);
    const r = await this.sessionPrecopyInfo(s);
    if (!r.ok) return r;
    // argsz and flags are copied back as given (drivers leave flags unassigned).
    return {
      ok: true,
      reply: encodePrecopyInfo({
        argsz: req.argsz,
        flags: req.flags,
        initialBytes: r.initialBytes,
        dirtyBytes: r.dirtyBytes,
      }),
    };
  }

  private async call<T>(what: string, f: () => Awaitable<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new VfioPortalError("backend-threw", `${what} threw`, { cause: e });
    }
  }

  // ───────────────────────────── MIG_DATA_SIZE ─────────────────────────────

  /** GET MIG_DATA_SIZE (`stop_copy_length`), in any state. ENOTTY without a migration backend. */
  dataSize(): Promise<DataSizeAnswer> {
    const m = this.migration;
    if (m === undefined) return Promise.resolve({ ok: false, errno: Errno.ENOTTY });
    return this.locked(async (): Promise<DataSizeAnswer> => {
      const r = await this.call("dataSize", () => m.dataSize());
      if (r.ok && !isU64(r.stopCopyLength))
        throw new VfioPortalError("backend-contract", "stopCopyLength must be u64");
      return r;
    });
  }

  // ───────────────────────────── DMA logging ─────────────────────────────

  /**
   * DMA_LOGGING_START. `scope` "all" is the vfio-user num_ranges 0 form; an empty list is EINVAL.
   * ENOTTY without DMA logging; EINVAL / E2BIG / EOVERFLOW for a bad request; EBUSY if already started.
   */
  dmaLoggingStart(scope: DmaLoggingScope, pageSize: bigint): Promise<DmaStartAnswer> {
    const d = this.dmaLogging;
    if (d === undefined) return Promise.resolve(this.dmaFail("start", Errno.ENOTTY));
    const e =
      scope === "all" ? (isPowerOfTwo(pageSize) ? 0 : Errno.EINVAL) : validateLoggingStart(scope, pageSize);
    if (e !== 0) return Promise.resolve(this.dmaFail("start", e));
    const copy: DmaLoggingScope =
      scope === "all" ? "all" : scope.map((r) => ({ iova: r.iova, length: r.length }));
    return this.dmaLock.run(async (): Promise<DmaStartAnswer> => {
      if (this.loggingPageSize !== undefined) return this.dmaFail("start", Errno.EBUSY);
      const r = await this.call("dma start", () => d.start(copy, pageSize));
      if ("errno" in r) return this.dmaFail("start", r.errno);
      if (!isPowerOfTwo(r.pageSize))
        throw new VfioPortalError("backend-contract", "start page size must be a power of two");
      this.loggingPageSize = r.pageSize;
      emitVfioEvent(VfioEvent.dmaLoggingStarted, this.label, {
        ranges: copy === "all" ? "all" : copy.length,
        pageSize: r.pageSize,
      });
      return { ok: true, pageSize: r.pageSize };
    });
  }

  /** DMA_LOGGING_STOP. Succeeds (no-op) when logging is off; ENOTTY without DMA logging. */
  dmaLoggingStop(): Promise<DmaAnswer> {
    const d = this.dmaLogging;
    if (d === undefined) return Promise.resolve(this.dmaFail("stop", Errno.ENOTTY));
    return this.dmaLock.run(async (): Promise<DmaAnswer> => {
      if (this.loggingPageSize === undefined) return { ok: true };
      await this.call("dma stop", () => d.stop());
      this.loggingPageSize = undefined;
      emitVfioEvent(VfioEvent.dmaLoggingStopped, this.label);
      return { ok: true };
    });
  }

  /**
   * DMA_LOGGING_REPORT: reads and clears the log of `[iova, iova+length)` and ORs it into `bitmap`
   * (never clears a bit there). `bitmap` must hold `dmaBitmapBytes(length, pageSize)` bytes (else
   * EINVAL). ENOTTY without DMA logging; EINVAL for a bad page size, zero length or logging off;
   * EOVERFLOW when iova + length passes 2^64; ENOMEM beyond `DMA_LOGGING_MAX_BITMAP_BYTES`.
   */
  dmaLoggingReport(iova: bigint, length: bigint, pageSize: bigint, bitmap: Uint8Array): Promise<DmaAnswer> {
    const d = this.dmaLogging;
    if (d === undefined) return Promise.resolve(this.dmaFail("report", Errno.ENOTTY));
    const e = validateLoggingReport(iova, length, pageSize);
    if (e !== 0) return Promise.resolve(this.dmaFail("report", e));
    const bytes = dmaBitmapBytes(length, pageSize);
    if (bytes > BigInt(DMA_LOGGING_MAX_BITMAP_BYTES))
      return Promise.resolve(this.dmaFail("report", Errno.ENOMEM));
    if (BigInt(bitmap.length) < bytes) return Promise.resolve(this.dmaFail("report", Errno.EINVAL));
    return this.dmaLock.run(async (): Promise<DmaAnswer> => {
      if (this.loggingPageSize === undefined) return this.dmaFail("report", Errno.EINVAL);
      const r = await this.call("dma report", () => d.reportAndClear(iova, length, pageSize));
      if (!(r instanceof Uint8Array)) return this.dmaFail("report", r.errno);
      if (BigInt(r.length) !== bytes) {
        throw new VfioPortalError(
          "backend-contract",
          `report bitmap has ${r.length} bytes, expected ${bytes}`,
        );
      }
      orInto(bitmap, r);
      return { ok: true };
    });
  }

  private dmaFail(op: string, errno: number): { ok: false; errno: number } {
    emitVfioEvent(VfioEvent.dmaLoggingRejected, this.label, { op, errno });
    return { ok: false, errno };
  }

  // ───────────────────────────── DEVICE_FEATURE ─────────────────────────────

  /**
   * VFIO_DEVICE_FEATURE with the uAPI envelope: `flags` = feature index | GET | SET | PROBE, `payload` =
   * the bytes after the 8-byte header. Full validation of §1.2; payloads decoded and encoded byte-exactly
   * (see `device-feature.ts` for options such as the DMA logging dialect and the data_fd to report).
   */
  deviceFeature(flags: number, payload: Uint8Array, options?: FeatureCallOptions): Promise<FeatureResult> {
    return runDeviceFeature(this, flags, payload, options ?? {});
  }
}

function name(from: MigState, to: MigState): string {
  return `${migStateName(from)}→${migStateName(to)}`;
}
