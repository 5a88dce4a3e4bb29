/**
 * One NVMe controller (NVMe Base 2.1 §3): its properties (registers), admin and I/O queues, the
 * command processing loop and completion posting. Command handlers live one family per file under
 * `admin/` and `nvm/`; this class owns only the machinery they share.
 *
 * Processing model: a doorbell write (MMIO, or a value found in the doorbell page / shadow doorbell
 * buffer by `poll()`) schedules one *pass* with `setImmediate`. A pass fetches commands round-robin
 * across submission queues (Arbitration Burst per queue), executes them, posts completions into the
 * completion queues in guest memory, and finally signals one MSI-X vector per completion queue that
 * received entries. Handlers complete synchronously (returning a status) or later (returning
 * `PENDING` and calling `completeLater`).
 *
 * Guest mistakes never throw: they become NVMe statuses (with DNR), asynchronous events, or ignored
 * writes, each with a named event (see `events.ts`).
 */
import type { Dma } from "../memory/dma.ts";
import { AsyncEventInfoError, AsyncEventType } from "../nvme/identifiers.ts";
import {
  AQA,
  CC,
  CSTS,
  DOORBELL_BASE,
  encodeCap,
  encodeVs,
  Reg,
  ShutdownNotification,
  ShutdownStatus,
} from "../nvme/registers.ts";
import { CQE_SIZE_LOG2, encodeCqe, SQE_BYTES, SQE_SIZE_LOG2 } from "../nvme/sqe.ts";
import { Status, statusDnr } from "../nvme/status.ts";
import { AsyncEvents } from "./async-events.ts";
import { DataPointerWalker } from "./data-pointer.ts";
import { ControllerEvent, emitEvent } from "./events.ts";
import { defaultFeatures, type FeatureValues } from "./features-state.ts";
import type { FunctionStateHooks } from "./migration/controller-state.ts";
import { CompletionQueue, type PendingCompletion, SubmissionQueue } from "./queues.ts";
import type { Subsystem } from "./subsystem.ts";

/** Returned by a handler that will complete the command later through `completeLater`. */
export const PENDING = -1;

export type CommandHandler = (c: NvmeController, sq: SubmissionQueue) => number;

export interface ControllerOptions {
  /** Controller Identifier: 0 for the primary, 1..n for secondaries. */
  cntlid: number;
  /** True for the primary controller (the PF), false for a secondary (a VF). */
  primary: boolean;
  subsystem: Subsystem;
  /** The function's DMA map (guest memory as this controller may address it). */
  dma: Dma;
  /** Most I/O queue pairs this controller can have (range 1..511). For a secondary it is NVQ − 1. */
  maxIoQueuePairs: number;
  /** MSI-X vectors the function has (range 1..2048). */
  msixVectors: number;
  /** CAP.MQES: maximum queue entries, 0's based. Default 4095 (4096 entries), range 1..65535. */
  mqes?: number;
  /** MDTS: maximum data transfer = 2^MDTS × 4 KiB. Default 7 (512 KiB), range 1..10. */
  mdts?: number;
  /** Volatile write cache present and enabled at reset. Default true. */
  volatileWriteCache?: boolean;
}

/** Doorbell page bytes (one 4 KiB page; with CAP.DSTRD = 0 it holds doorbells for qid 0..511). */
export const DOORBELL_PAGE_BYTES = 4096;
/** Most qids the doorbell page can carry. */
export const MAX_QID = DOORBELL_PAGE_BYTES / 8 - 1;
/** Commands executed per pass before yielding to the event loop. */
const PASS_BUDGET = 2048;

type InterruptSink = (vector: number) => void;

export class NvmeController {
  readonly cntlid: number;
  readonly primary: boolean;
  readonly subsystem: Subsystem;
  readonly dma: Dma;
  maxIoQueuePairs: number;
  msixVectors: number;
  readonly mqes: number;
  readonly mdts: number;
  readonly vwcPresent: boolean;
  readonly capValue: bigint;
  readonly vsValue = encodeVs(2, 1, 0);

  // Properties (registers).
  cc = 0;
  csts = 0;
  aqa = 0;
  asq = 0;
  acq = 0;
  intms = 0;

  /**
   * The doorbell page (BAR0 offset 0x1000): MMIO doorbell writes land here, and over vfio-user the
   * same bytes are the client's mmap of that page, which `poll()` scans.
   */
  doorbells: Uint32Array = new Uint32Array(DOORBELL_PAGE_BYTES / 4);

  readonly sqs: (SubmissionQueue | undefined)[] = [];
  readonly cqs: (CompletionQueue | undefined)[] = [];
  /** Submission queues in creation order, for round-robin arbitration. */
  activeSqs: SubmissionQueue[] = [];

  features: FeatureValues;
  readonly asyncEvents: AsyncEvents;
  /** Shadow doorbell buffer and EventIdx buffer (Doorbell Buffer Config), guest-physical. */
  dbbuf: { shadowIova: number; eventIdxIova: number } | undefined;

  /** Secondary controller online (always true for the primary). Offline → CSTS.CFS, writes ignored. */
  online: boolean;
  /** TP4159: suspended (Migration Send Suspend); no command is fetched. */
  suspended = false;
  /** TP4159: a Suspend Notification was received. */
  suspendNotified = false;

  /** The SQE being executed (a private copy, so the guest cannot change it under us). */
  readonly sqeBytes = new Uint8Array(SQE_BYTES);
  readonly sqe = new DataView(this.sqeBytes.buffer);
  /** DW0 / DW1 of the completion of the command being executed (handlers set them). */
  dw0 = 0;
  dw1 = 0;
  readonly walker: DataPointerWalker;

  /** The owning PCI function's share of migratable state (config space, MSI-X); set by the function. */
  functionState: FunctionStateHooks | undefined;

  /** Count of commands completed (all queues), for statistics. */
  completedCommands = 0;
  /** Counters behind the SMART / Health log. */
  readonly stats = {
    hostReadCommands: 0,
    hostWriteCommands: 0,
    dataUnitsReadBytes: 0,
    dataUnitsWrittenBytes: 0,
    powerOnSinceMs: Date.now(),
  };
  /** NSIDs attached to this controller (active namespaces). */
  readonly attachedNamespaces = new Set<number>();
  /** NSIDs whose attributes changed since the Changed Namespace List was last read. */
  readonly changedNamespaces = new Set<number>();

  private interruptSink: InterruptSink = () => {};
  private scheduled = false;
  private inPass = false;
  /** CQs owed an interrupt: entries `0 .. touchedCount-1` (a count, so clearing is not a `length = 0`). */
  private readonly touchedCqs: CompletionQueue[] = [];
  private touchedCount = 0;
  /** Hooks run when the controller becomes idle (suspend waits on these). */
  private idleWaiters: (() => void)[] = [];
  /** Observers of controller resets (migration sessions, tracking). */
  readonly resetObservers: ((reason: string) => void)[] = [];
  /** Observers of every completed write-type command's LBA range (user-data change logging). */
  lbaWriteObservers: ((nsid: number, slba: number, nlb: number, deallocated: boolean) => void)[] = [];

  constructor(opts: ControllerOptions) {
    this.cntlid = opts.cntlid;
    this.primary = opts.primary;
    this.subsystem = opts.subsystem;
    this.dma = opts.dma;
    this.maxIoQueuePairs = Math.max(1, Math.min(MAX_QID, opts.maxIoQueuePairs));
    this.msixVectors = opts.msixVectors;
    this.mqes = opts.mqes ?? 4095;
    this.mdts = opts.mdts ?? 7;
    this.vwcPresent = opts.volatileWriteCache ?? true;
    this.capValue = encodeCap({
      mqes: this.mqes,
      cqr: true,
      ams: 0,
      to: 20, // 10 s
      dstrd: 0,
      nssrs: false,
      css: 1,
      mpsmin: 0,
      mpsmax: 4,
    });
    this.features = defaultFeatures(this.vwcPresent);
    this.asyncEvents = new AsyncEvents(this);
    this.walker = new DataPointerWalker(this.dma);
    this.online = opts.primary;
    if (!this.online) this.csts = CSTS.CFS;
  }

  // ---------------------------------------------------------------- wiring

  /** Sets where MSI-X messages go (the function's MSI-X table). */
  setInterruptSink(sink: InterruptSink): void {
    this.interruptSink = sink;
  }

  get enabled(): boolean {
    return (this.cc & CC.EN) !== 0;
  }
  get ready(): boolean {
    return (this.csts & CSTS.RDY) !== 0;
  }
  /** Memory page size from CC.MPS, in bytes. */
  get pageBytes(): number {
    return 4096 << CC.mpsOf(this.cc);
  }
  /** Maximum data transfer size in bytes (MDTS with CAP.MPSMIN = 4 KiB). */
  get mdtsBytes(): number {
    return 4096 << this.mdts;
  }

  /**
   * Secondary controller Online / Offline (Virtualization Management). Online applies the assigned
   * resources (NVQ includes the admin queue); either transition resets the controller.
   */
  setOnline(online: boolean, nvq: number, nvi: number): void {
    this.online = online;
    if (online) {
      this.maxIoQueuePairs = Math.max(1, Math.min(MAX_QID, nvq - 1));
      this.msixVectors = Math.max(1, nvi);
    }
    this.controllerReset(online ? "secondary-online" : "secondary-offline");
  }

  // ---------------------------------------------------------------- MMIO

  /** 32-bit read of BAR0 at `offset`. Unaligned or out-of-range reads return 0. */
  read32(offset: number): number {
    switch (offset) {
      case Reg.CAP:
        return Number(this.capValue & 0xffffffffn);
      case Reg.CAP + 4:
        return Number(this.capValue >> 32n);
      case Reg.VS:
        return this.vsValue;
      case Reg.INTMS:
      case Reg.INTMC:
        return this.intms;
      case Reg.CC:
        return this.cc;
      case Reg.CSTS:
        return this.csts;
      case Reg.NSSR:
        return 0;
      case Reg.AQA:
        return this.aqa;
      case Reg.ASQ:
        return this.asq >>> 0;
      case Reg.ASQ + 4:
        return Math.floor(this.asq / 0x1_0000_0000);
      case Reg.ACQ:
        return this.acq >>> 0;
      case Reg.ACQ + 4:
        return Math.floor(this.acq / 0x1_0000_0000);
      default:
        if (offset >= DOORBELL_BASE && offset < DOORBELL_BASE + DOORBELL_PAGE_BYTES && (offset & 3) === 0) {
          // Doorbells are write-only; reads return 0 (NVMe Base §3.1.4.21).
          return 0;
        }
        return 0;
    }
  }

  read64(offset: number): bigint {
    return BigInt(this.read32(offset)) | (BigInt(this.read32(offset + 4)) << 32n);
  }

  /** 32-bit write to BAR0. */
  write32(offset: number, value: number): void {
    value >>>= 0;
    if (offset >= DOORBELL_BASE && offset < DOORBELL_BASE + DOORBELL_PAGE_BYTES) {
      if ((offset & 3) !== 0) return;
      this.doorbells[(offset - DOORBELL_BASE) >>> 2] = value;
      this.doorbellWritten((offset - DOORBELL_BASE) >>> 2, value);
      return;
    }
    if (!this.online && offset !== Reg.CSTS) {
      emitEvent(ControllerEvent.mmioIgnored, this.cntlid, { offset, reason: "secondary-offline" });
      return;
    }
    switch (offset) {
      case Reg.INTMS:
        this.intms |= value;
        return;
      case Reg.INTMC:
        this.intms &= ~value;
        return;
      case Reg.CC:
        this.writeCc(value);
        return;
      case Reg.CSTS:
        // NSSRO is RW1C; other bits RO.
        if (value & CSTS.NSSRO) this.csts &= ~CSTS.NSSRO;
        return;
      case Reg.NSSR:
        return; // CAP.NSSRS = 0: NVM Subsystem Reset not supported; writes have no effect.
      case Reg.AQA:
        if (!this.enabled) this.aqa = value & 0x0fff0fff;
        return;
      case Reg.ASQ:
        if (!this.enabled)
          this.asq = Math.floor(this.asq / 0x1_0000_0000) * 0x1_0000_0000 + ((value & 0xfffff000) >>> 0);
        return;
      case Reg.ASQ + 4:
        if (!this.enabled) this.asq = value * 0x1_0000_0000 + (this.asq % 0x1_0000_0000);
        return;
      case Reg.ACQ:
        if (!this.enabled)
          this.acq = Math.floor(this.acq / 0x1_0000_0000) * 0x1_0000_0000 + ((value & 0xfffff000) >>> 0);
        return;
      case Reg.ACQ + 4:
        if (!this.enabled) this.acq = value * 0x1_0000_0000 + (this.acq % 0x1_0000_0000);
        return;
      default:
        emitEvent(ControllerEvent.mmioIgnored, this.cntlid, { offset, reason: "read-only-or-reserved" });
    }
  }

  write64(offset: number, value: bigint): void {
    this.write32(offset, Number(value & 0xffffffffn));
    this.write32(offset + 4, Number((value >> 32n) & 0xffffffffn));
  }

  private writeCc(value: number): void {
    const wasEnabled = this.enabled;
    const en = (value & CC.EN) !== 0;
    const shn = CC.shnOf(value);
    if (wasEnabled && !en) {
      this.cc = value;
      this.controllerReset("cc.en-cleared");
      this.cc = value & ~CC.EN;
      emitEvent(ControllerEvent.ccDisabled, this.cntlid);
      return;
    }
    if (!wasEnabled && en) {
      this.cc = value;
      const problem = this.validateEnable();
      if (problem !== undefined) {
        // The controller does not become ready; the host times out on CSTS.RDY.
        this.cc = value & ~CC.EN;
        emitEvent(ControllerEvent.ccEnableRejected, this.cntlid, { reason: problem });
        return;
      }
      this.createAdminQueues();
      this.csts = (this.csts | CSTS.RDY) & ~CSTS.SHST_MASK;
      emitEvent(ControllerEvent.ccEnabled, this.cntlid, { cc: value });
      this.kick();
      return;
    }
    // EN unchanged: only SHN may change while enabled; other fields are read-only then.
    if (wasEnabled) {
      this.cc = (this.cc & ~(0x3 << 14)) | (shn << 14);
      if (shn !== ShutdownNotification.None) {
        // Everything fetched has completed synchronously or is an outstanding AER: shutdown is immediate.
        this.csts = (this.csts & ~CSTS.SHST_MASK) | (ShutdownStatus.Complete << CSTS.SHST_SHIFT);
        emitEvent(ControllerEvent.shutdown, this.cntlid, { shn });
      }
    } else {
      this.cc = value;
    }
  }

  private validateEnable(): string | undefined {
    if (CC.cssOf(this.cc) !== 0) return "css-unsupported";
    if (CC.mpsOf(this.cc) > 4) return "mps-out-of-range";
    if (CC.amsOf(this.cc) !== 0) return "ams-unsupported";
    const asqs = AQA.asqsOf(this.aqa) + 1;
    const acqs = AQA.acqsOf(this.aqa) + 1;
    if (asqs < 2 || acqs < 2 || asqs > this.mqes + 1 || acqs > this.mqes + 1) return "aqa-invalid";
    if (this.asq % 4096 !== 0 || this.acq % 4096 !== 0) return "admin-queue-unaligned";
    if (!this.dma.contains(this.asq, asqs * SQE_BYTES)) return "asq-not-mapped";
    if (!this.dma.contains(this.acq, acqs * 16)) return "acq-not-mapped";
    return undefined;
  }

  private createAdminQueues(): void {
    const asqs = AQA.asqsOf(this.aqa) + 1;
    const acqs = AQA.acqsOf(this.aqa) + 1;
    const cqWin = this.dma.window(this.acq, acqs * 16)!;
    const sqWin = this.dma.window(this.asq, asqs * SQE_BYTES)!;
    const cq = new CompletionQueue(0, this.acq, acqs, true, 0, cqWin.region, cqWin.offset);
    const sq = new SubmissionQueue(0, 0, this.asq, asqs, 0, sqWin.region, sqWin.offset);
    cq.sqCount = 1;
    this.cqs[0] = cq;
    this.sqs[0] = sq;
    this.activeSqs = [sq];
    this.doorbells[0] = 0;
    this.doorbells[1] = 0;
  }

  /**
   * Controller Level Reset (CC.EN 1→0, FLR, secondary online/offline): deletes every queue, drops
   * outstanding commands without completions, restores registers (but AQA/ASQ/ACQ) and features.
   */
  controllerReset(reason: string): void {
    for (const o of this.resetObservers) o(reason);
    this.sqs.length = 0;
    this.cqs.length = 0;
    this.activeSqs = [];
    this.doorbells.fill(0);
    this.dbbuf = undefined;
    this.asyncEvents.reset();
    this.features = defaultFeatures(this.vwcPresent);
    this.suspended = false;
    this.suspendNotified = false;
    this.cc = 0;
    this.csts = this.online ? 0 : CSTS.CFS;
    this.intms = 0;
    emitEvent(ControllerEvent.controllerReset, this.cntlid, { reason });
    this.notifyIdle();
  }

  // ---------------------------------------------------------------- doorbells

  /** A doorbell slot was written by MMIO: slot 2·qid is the SQ tail, 2·qid+1 the CQ head (CAP.DSTRD = 0). */
  private doorbellWritten(slot: number, _value: number): void {
    const qid = slot >>> 1;
    const isCq = (slot & 1) === 1;
    const q = isCq ? this.cqs[qid] : this.sqs[qid];
    if (!this.ready || q === undefined) {
      this.doorbells[slot] = 0;
      emitEvent(ControllerEvent.doorbellInvalidRegister, this.cntlid, { qid, isCq });
      if (this.ready)
        this.asyncEvents.post(
          AsyncEventType.ErrorStatus,
          AsyncEventInfoError.WriteToInvalidDoorbellRegister,
          0,
        );
      return;
    }
    if (isCq) this.cqHeadUpdated(q as CompletionQueue);
    this.kick();
  }

  /** Reads a doorbell value, validating it against the queue size; invalid → AER, old value kept. */
  private refreshTail(sq: SubmissionQueue): void {
    let t = this.doorbells[sq.sqid * 2]!;
    if (this.dbbuf !== undefined && sq.sqid !== 0) {
      const w = this.dma.window(this.dbbuf.shadowIova + sq.sqid * 8, 4);
      if (w !== undefined) t = w.region.view.getUint32(w.offset, true);
    }
    if (t === sq.tail) return;
    if (t >= sq.sizeEntries) {
      this.doorbells[sq.sqid * 2] = sq.tail;
      emitEvent(ControllerEvent.doorbellInvalidValue, this.cntlid, { sqid: sq.sqid, value: t });
      this.asyncEvents.post(AsyncEventType.ErrorStatus, AsyncEventInfoError.InvalidDoorbellWriteValue, 0);
      return;
    }
    sq.tail = t;
  }

  private cqHeadUpdated(cq: CompletionQueue): void {
    let h = this.doorbells[cq.cqid * 2 + 1]!;
    if (this.dbbuf !== undefined && cq.cqid !== 0) {
      const w = this.dma.window(this.dbbuf.shadowIova + cq.cqid * 8 + 4, 4);
      if (w !== undefined) h = w.region.view.getUint32(w.offset, true);
    }
    if (h === cq.head) return;
    if (h >= cq.sizeEntries) {
      this.doorbells[cq.cqid * 2 + 1] = cq.head;
      emitEvent(ControllerEvent.doorbellInvalidValue, this.cntlid, { cqid: cq.cqid, value: h });
      this.asyncEvents.post(AsyncEventType.ErrorStatus, AsyncEventInfoError.InvalidDoorbellWriteValue, 0);
      return;
    }
    cq.head = h;
    if (cq.overflow.length > 0) this.drainOverflow(cq);
  }

  /**
   * Scans the doorbell page and the shadow doorbells for new values (used when doorbells are written
   * without MMIO: the vfio-user sparse-mmap doorbell page, or shadow doorbells). Schedules a pass
   * when there is work.
   */
  poll(): boolean {
    if (!this.ready) return false;
    const work = this.refreshDoorbells();
    if (work && !this.suspended) this.kick();
    return work && !this.suspended;
  }

  /**
   * Takes in the latest host-written doorbell values (doorbell page and shadow doorbells) without
   * fetching anything. Returns true when some SQ has unfetched entries. State capture calls it so a
   * suspended controller reports the tails the host last wrote.
   */
  refreshDoorbells(): boolean {
    let work = false;
    for (let i = 0; i < this.cqs.length; i++) {
      const cq = this.cqs[i];
      if (cq !== undefined) this.cqHeadUpdated(cq);
    }
    for (const sq of this.activeSqs) {
      this.refreshTail(sq);
      if (sq.head !== sq.tail) work = true;
    }
    return work;
  }

  /** Schedules a processing pass. */
  kick(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.runPass);
  }

  /** Runs a pass now (tests and in-process benchmarks may call it directly). */
  readonly runPass = (): void => {
    this.scheduled = false;
    if (this.inPass) {
      this.kick();
      return;
    }
    if (!this.ready || this.suspended || !this.online) return;
    this.inPass = true;
    let budget = PASS_BUDGET;
    try {
      const sqs = this.activeSqs;
      for (const sq of sqs) this.refreshTail(sq);
      const ab = this.features.arbitration & 0x7;
      const burst = ab === 7 ? 0x7fffffff : 1 << ab;
      let progressed = true;
      while (progressed && budget > 0 && !this.suspended) {
        progressed = false;
        for (let i = 0; i < sqs.length && budget > 0; i++) {
          const sq = sqs[i]!;
          let n = 0;
          while (
            sq.head !== sq.tail &&
            n < burst &&
            budget > 0 &&
            !this.suspended &&
            this.sqs[sq.sqid] === sq
          ) {
            this.fetchAndExecute(sq);
            n++;
            budget--;
          }
          if (n > 0) progressed = true;
        }
        if (this.activeSqs !== sqs) break; // queues created or deleted: restart with the new list
      }
      if (this.dbbuf !== undefined) this.updateEventIdx();
    } finally {
      this.inPass = false;
      this.signalInterrupts();
    }
    if (budget === 0 || this.pendingWork()) this.kick();
  };

  private pendingWork(): boolean {
    if (!this.ready || this.suspended) return false;
    for (const sq of this.activeSqs) if (sq.head !== sq.tail) return true;
    return false;
  }

  private updateEventIdx(): void {
    const d = this.dbbuf!;
    for (const sq of this.activeSqs) {
      if (sq.sqid === 0) continue;
      const w = this.dma.windowForWrite(d.eventIdxIova + sq.sqid * 8, 4);
      if (w !== undefined) w.region.view.setUint32(w.offset, sq.tail, true);
    }
    for (let i = 1; i < this.cqs.length; i++) {
      const cq = this.cqs[i];
      if (cq === undefined) continue;
      const w = this.dma.windowForWrite(d.eventIdxIova + cq.cqid * 8 + 4, 4);
      if (w !== undefined) w.region.view.setUint32(w.offset, cq.head, true);
    }
  }

  private fetchAndExecute(sq: SubmissionQueue): void {
    // Copy the SQE out of guest memory (TOCTOU-safe), then advance the head.
    const src = sq.region.view;
    const at = sq.regionOffset + sq.head * SQE_BYTES;
    const dst = this.sqe;
    for (let o = 0; o < SQE_BYTES; o += 4) dst.setUint32(o, src.getUint32(at + o, true), true);
    sq.head = sq.head + 1 === sq.sizeEntries ? 0 : sq.head + 1;
    sq.inflight++;
    this.dw0 = 0;
    this.dw1 = 0;
    const cid = dst.getUint16(2, true);
    let st: number;
    if (sq.sqid === 0) {
      st = this.subsystem.dispatchAdmin(this, sq);
    } else {
      st = this.subsystem.dispatchIo(this, sq);
    }
    if (st === PENDING) return;
    if (st !== Status.Success) this.commandFailed(sq, cid, st);
    sq.inflight--;
    this.postCompletion(sq, cid, st, this.dw0, this.dw1);
  }

  private commandFailed(sq: SubmissionQueue, cid: number, st: number): void {
    this.asyncEvents.logError(sq.sqid, cid, st, this.sqe.getUint32(4, true));
    emitEvent(ControllerEvent.commandFailed, this.cntlid, {
      sqid: sq.sqid,
      cid,
      opcode: this.sqe.getUint8(0),
      status: st,
      dnr: statusDnr(st),
    });
  }

  /** Completes a command a handler answered with PENDING. Safe to call from any callback. */
  completeLater(sq: SubmissionQueue, cid: number, st: number, dw0 = 0, dw1 = 0): void {
    if (this.sqs[sq.sqid] !== sq) return; // queue deleted or controller reset meanwhile: no completion
    sq.inflight--;
    this.postCompletion(sq, cid, st, dw0, dw1);
    if (!this.inPass) this.signalInterrupts();
    if (sq.inflight === 0) this.notifyIdle();
  }

  private postCompletion(sq: SubmissionQueue, cid: number, st: number, dw0: number, dw1: number): void {
    const cq = this.cqs[sq.cqid];
    if (cq === undefined) return;
    this.completedCommands++;
    if (cq.overflow.length > 0 || cq.full) {
      cq.overflow.push({ dw0, dw1, sqid: sq.sqid, cid, status: st });
      emitEvent(ControllerEvent.cqFull, this.cntlid, { cqid: cq.cqid });
      return;
    }
    this.writeCqe(cq, dw0, dw1, sq.head, sq.sqid, cid, st);
  }

  private writeCqe(
    cq: CompletionQueue,
    dw0: number,
    dw1: number,
    sqhd: number,
    sqid: number,
    cid: number,
    st: number,
  ): void {
    const at = cq.regionOffset + cq.tail * 16;
    encodeCqe(cq.region.view, at, dw0, dw1, sqhd, sqid, cid, cq.phase, st);
    this.dma.logWrite(cq.baseIova + cq.tail * 16, 16);
    cq.tail++;
    if (cq.tail === cq.sizeEntries) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    if (!cq.interruptPending) {
      cq.interruptPending = true;
      this.touchedCqs[this.touchedCount++] = cq;
    }
  }

  private drainOverflow(cq: CompletionQueue): void {
    while (cq.overflow.length > 0 && !cq.full) {
      const p = cq.overflow.shift() as PendingCompletion;
      const sq = this.sqs[p.sqid];
      this.writeCqe(cq, p.dw0, p.dw1, sq?.head ?? 0, p.sqid, p.cid, p.status);
    }
    if (!this.inPass) this.signalInterrupts();
    if (cq.overflow.length === 0) this.notifyIdle();
  }

  private signalInterrupts(): void {
    const t = this.touchedCqs;
    // The bound is re-read: a CQ touched while signalling (a sink that completes synchronously) is
    // signalled by this loop too.
    for (let i = 0; i < this.touchedCount; i++) {
      const cq = t[i]!;
      cq.interruptPending = false;
      if (cq.ien && this.cqs[cq.cqid] === cq) this.interruptSink(cq.iv);
    }
    this.touchedCount = 0;
  }

  // ---------------------------------------------------------------- queue management (used by admin handlers)

  /** Registers a new I/O completion queue. Validation is the caller's. */
  addCq(cq: CompletionQueue): void {
    this.cqs[cq.cqid] = cq;
    this.doorbells[cq.cqid * 2 + 1] = 0;
    emitEvent(ControllerEvent.queueCreated, this.cntlid, { cqid: cq.cqid, size: cq.sizeEntries, iv: cq.iv });
  }

  addSq(sq: SubmissionQueue): void {
    this.sqs[sq.sqid] = sq;
    this.cqs[sq.cqid]!.sqCount++;
    this.doorbells[sq.sqid * 2] = 0;
    this.activeSqs = [...this.activeSqs, sq];
    emitEvent(ControllerEvent.queueCreated, this.cntlid, {
      sqid: sq.sqid,
      cqid: sq.cqid,
      size: sq.sizeEntries,
    });
  }

  deleteSq(sqid: number): void {
    const sq = this.sqs[sqid];
    if (sq === undefined) return;
    this.sqs[sqid] = undefined;
    const cq = this.cqs[sq.cqid];
    if (cq !== undefined) {
      cq.sqCount--;
      // Completions still queued for the deleted SQ are dropped (the host sees Aborted - SQ Deletion
      // only for commands we could still complete; ours have all completed synchronously).
      for (let i = cq.overflow.length - 1; i >= 0; i--)
        if (cq.overflow[i]!.sqid === sqid) cq.overflow.splice(i, 1);
    }
    this.activeSqs = this.activeSqs.filter((q) => q !== sq);
    this.doorbells[sqid * 2] = 0;
    emitEvent(ControllerEvent.queueDeleted, this.cntlid, { sqid });
    if (sq.inflight > 0) this.notifyIdle();
  }

  deleteCq(cqid: number): void {
    this.cqs[cqid] = undefined;
    this.doorbells[cqid * 2 + 1] = 0;
    emitEvent(ControllerEvent.queueDeleted, this.cntlid, { cqid });
  }

  /** Number of I/O SQs / CQs that currently exist. */
  ioQueueCounts(): { sqs: number; cqs: number } {
    let s = 0;
    let c = 0;
    for (let i = 1; i < this.sqs.length; i++) if (this.sqs[i] !== undefined) s++;
    for (let i = 1; i < this.cqs.length; i++) if (this.cqs[i] !== undefined) c++;
    return { sqs: s, cqs: c };
  }

  // ---------------------------------------------------------------- data transfer helpers for handlers

  /**
   * Copies `data` to the host buffer described by the current command's PRP1/PRP2 (admin commands use
   * PRPs only). Returns an NVMe status.
   */
  transferToHost(data: Uint8Array): number {
    const st = this.walkDptr(data.byteLength, true);
    if (st !== Status.Success) return st;
    const w = this.walker;
    let pos = 0;
    for (let i = 0; i < w.count; i++) {
      const len = w.lengths[i]!;
      w.regions[i]!.bytes.set(data.subarray(pos, pos + len), w.offsets[i]!);
      this.dma.logWrite(w.iovas[i]!, len);
      pos += len;
    }
    return Status.Success;
  }

  /** Reads `lengthBytes` from the host buffer of the current command into a new array, or a status. */
  transferFromHost(lengthBytes: number): Uint8Array | number {
    const st = this.walkDptr(lengthBytes, false);
    if (st !== Status.Success) return st;
    const out = new Uint8Array(lengthBytes);
    const w = this.walker;
    let pos = 0;
    for (let i = 0; i < w.count; i++) {
      const len = w.lengths[i]!;
      const off = w.offsets[i]!;
      out.set(w.regions[i]!.bytes.subarray(off, off + len), pos);
      pos += len;
    }
    return out;
  }

  /** Walks the current command's data pointer (PRP or SGL per PSDT) for `lengthBytes`. */
  walkDptr(lengthBytes: number, toGuest: boolean): number {
    const psdt = (this.sqe.getUint8(1) >> 6) & 3;
    if (psdt === 0) {
      const prp1 = readAddr(this.sqe, 24);
      const prp2 = readAddr(this.sqe, 32);
      return this.walker.walkPrp(prp1, prp2, lengthBytes, this.pageBytes, toGuest);
    }
    if (psdt === 3) return Status.InvalidField;
    return this.walker.walkSgl(this.sqe, 24, lengthBytes, toGuest);
  }

  /** Reports a completed change of logical blocks to the change observers (user-data logging). */
  lbaWritten(nsid: number, slba: number, nlb: number, deallocated: boolean): void {
    const obs = this.lbaWriteObservers;
    for (let i = 0; i < obs.length; i++) obs[i]!(nsid, slba, nlb, deallocated);
  }

  // ---------------------------------------------------------------- idle tracking (Suspend)

  /** Commands fetched but not completed, across all queues (outstanding AERs excluded). */
  outstandingCommands(): number {
    let n = 0;
    for (const sq of this.activeSqs) n += sq.inflight;
    n -= this.asyncEvents.outstandingCount();
    for (let i = 0; i < this.cqs.length; i++) n += this.cqs[i]?.overflow.length ?? 0;
    return n;
  }

  /** Resolves when no fetched command is still running (AERs stay outstanding by design). */
  whenIdle(): Promise<void> {
    if (this.outstandingCommands() <= 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length === 0 || this.outstandingCommands() > 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Raises the interrupt for a CQ with entries (used after restore on the destination). */
  signalCq(cqid: number): void {
    const cq = this.cqs[cqid];
    if (cq?.ien) this.interruptSink(cq.iv);
  }

  /** Entry size checks for I/O queue creation (CC.IOSQES / CC.IOCQES). */
  get ioQueueEntrySizesValid(): boolean {
    return CC.iosqesOf(this.cc) === SQE_SIZE_LOG2 && CC.iocqesOf(this.cc) === CQE_SIZE_LOG2;
  }
}

function readAddr(v: DataView, at: number): number {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * 0x1_0000_0000 + lo;
}
