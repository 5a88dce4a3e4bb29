/**
 * The guest's NVMe driver: brings a controller up the way Linux's nvme driver does and runs I/O
 * queues over a `FunctionPort`, with queues and buffers in `GuestMemory`.
 *
 * Bring-up (`init`), guest ─► function:
 *
 *   PCI COMMAND |= MEM | MASTER                 config space
 *   read CAP (MQES, DSTRD, TO, CSS, MPSMIN)      BAR0 00h
 *   CC.EN ← 0, wait CSTS.RDY = 0 (≤ CAP.TO)      disable
 *   AQA, ASQ, ACQ ← admin queues in guest RAM
 *   CC ← CSS NVM | MPS 0 | AMS RR | IOSQES 6 | IOCQES 4, then | EN; wait CSTS.RDY = 1 (≤ CAP.TO)
 *   MSI-X: program + unmask vectors, enable       (vector 0 = admin CQ)
 *   Identify Controller (CNS 01h), Active NS list (CNS 02h), Identify Namespace (CNS 00h) each
 *   Set Features Number of Queues (FID 07h)
 *   [Doorbell Buffer Config (7Ch) when OACS bit 8 and `shadowDoorbells`]
 *   Create I/O CQ (IEN=1, own vector | IEN=0 polling), Create I/O SQ   × ioQueues
 *   Asynchronous Event Request × asyncEventRequests (re-armed on every completion)
 *
 * I/O: `submitRead/submitWrite/submitFlush/submitIo` write the SQE straight into the SQ ring (no
 * allocation per command), build PRPs (a pre-allocated PRP list per command slot), and ring the SQ
 * doorbell — once per batch when called from a completion callback. Completions are reaped by the
 * MSI-X handler of the CQ's vector, or by `poll()` (started automatically in polling mode).
 *
 * Timeouts: an I/O outstanding for `ioTimeoutMs` is first looked for in its CQ (a missed interrupt),
 * then reported (`onIoTimeout`) and an Abort (08h) is sent for (sqid, cid); the command's own
 * completion (normally "Command Abort Requested") still arrives through its callback.
 *
 * Migration: the driver keeps no device register state it would need to re-read (CAP is a constant
 * of the function; queue state is in guest RAM and in the driver's own indices), so a function that
 * is migrated under it simply continues.
 */

import { decodeNumberOfQueuesAllocated } from "../nvme/features.ts";
import { Cns } from "../nvme/identifiers.ts";
import {
  decodeIdentifyController,
  type IdentifyController,
  OACS_DBBUF,
} from "../nvme/identify-controller.ts";
import {
  bytesForLbads,
  decodeIdentifyNamespace,
  flbasIndex,
  type IdentifyNamespace,
} from "../nvme/identify-namespace.ts";
import { decodeNamespaceList } from "../nvme/namespace-list.ts";
import { NvmOpcode } from "../nvme/opcodes.ts";
import {
  AQA,
  type Capabilities,
  CC,
  CSTS,
  decodeCap,
  Reg,
  ShutdownNotification,
  ShutdownStatus,
} from "../nvme/registers.ts";
import { CQE_BYTES, CQE_SIZE_LOG2, encodeSqe, SQE_BYTES, SQE_SIZE_LOG2 } from "../nvme/sqe.ts";
import { status as makeStatus, StatusCodeType } from "../nvme/status.ts";
import {
  type AdminSqe,
  abortCommand,
  asyncEventRequestCommand,
  createIoCqCommand,
  createIoSqCommand,
  deleteIoCqCommand,
  deleteIoSqCommand,
  doorbellBufferConfigCommand,
  getLogPageCommand,
  identifyCommand,
  setNumberOfQueuesCommand,
} from "./admin-commands.ts";
import type { FunctionPort } from "./function-port.ts";
import { GUEST_PAGE_BYTES, type GuestMemory } from "./guest-memory.ts";
import { NvmeDriverError } from "./nvme-driver-error.ts";
import { disableMsix, enableMsix, enablePciFunction, type MsixInfo, readMsix } from "./pci-msix.ts";
import { buildPrps, type PrpPair, prpListPagesForMaxTransfer } from "./prp-builder.ts";
import {
  type CompletionCallback,
  type DoorbellBuffers,
  QueuePair,
  type QueuePairState,
} from "./queue-pair.ts";

export type { CompletionCallback } from "./queue-pair.ts";

/**
 * "Host Aborted Command" (SCT 3h Path Related, SC 71h): the status the driver gives commands it
 * completes itself because the controller was reset or shut down under them.
 */
export const HOST_ABORTED_STATUS = makeStatus(StatusCodeType.PathRelated, 0x71, false);

export interface GuestNvmeDriverOptions {
  /** I/O queue pairs to create. Default 1, range 1..65535 (capped by what the controller grants). */
  ioQueues?: number;
  /** Entries per I/O SQ and CQ. Default 128, range 2..65536 (capped by CAP.MQES + 1). */
  ioQueueEntries?: number;
  /** Entries of the admin SQ and CQ. Default 32, range 2..4096 (capped by CAP.MQES + 1). */
  adminQueueEntries?: number;
  /**
   * "interrupt" (default): each I/O CQ has IEN = 1 and its own MSI-X vector (shared round-robin when
   * the function has fewer vectors). "polling": I/O CQs have IEN = 0 and are reaped by `poll()`,
   * which the driver runs on `setImmediate` while I/O is outstanding. The admin CQ always uses
   * vector 0 (and is polled when the function has no MSI-X).
   */
  completionMode?: "interrupt" | "polling";
  /** Use Doorbell Buffer Config (shadow doorbells + EventIdx) when OACS bit 8 is set. Default false. */
  shadowDoorbells?: boolean;
  /** I/O timeout before an Abort is sent, ms. Default 30000 (Linux nvme io_timeout), range ≥ 1. */
  ioTimeoutMs?: number;
  /** Admin command timeout, ms. Default 60000 (Linux admin_timeout), range ≥ 1. */
  adminTimeoutMs?: number;
  /** Asynchronous Event Requests kept outstanding. Default 1, range 0..(AERL + 1). */
  asyncEventRequests?: number;
  /** Largest transfer of one command, bytes. Default 131072, range 4096..(MDTS limit). */
  maxTransferBytes?: number;
  /** Normal shutdown timeout, ms. Default 5000 (Linux shutdown_timeout), range ≥ 1. */
  shutdownTimeoutMs?: number;
  /** Called when a CQE names a command that is not outstanding (also counted). */
  onDuplicateCompletion?: (qid: number, cid: number) => void;
  /** Called when an I/O times out (before the Abort is sent). */
  onIoTimeout?: (qid: number, cid: number) => void;
  /** Called for each Asynchronous Event reported. */
  onAsyncEvent?: (event: AsyncEvent) => void;
}

/** One Asynchronous Event (AER completion DW0). */
export interface AsyncEvent {
  /** Asynchronous Event Type (bits 2:0). */
  type: number;
  /** Asynchronous Event Information (bits 15:8). */
  info: number;
  /** Log Page Identifier to read (bits 23:16). */
  logPageId: number;
  dw0: number;
}

export interface NamespaceInfo {
  nsid: number;
  /** Namespace Size, logical blocks. */
  nsze: number;
  /** Logical block size, bytes. */
  lbaBytes: number;
  /** Metadata bytes per block of the selected format (the driver transfers no metadata). */
  metadataBytes: number;
  identify: IdentifyNamespace;
}

export interface AdminResult {
  /** 15-bit Status Field (0 = success). */
  status: number;
  dw0: number;
  dw1: number;
}

export interface DriverStats {
  /** I/O commands submitted / completed by the controller. */
  ioSubmitted: number;
  ioCompleted: number;
  /** CQEs for a CID that was not outstanding (all queues). */
  duplicateCompletions: number;
  /** I/Os that hit `ioTimeoutMs`. */
  ioTimeouts: number;
  /** Completions found in a CQ by the timeout check (missed interrupts). */
  completionsFoundByTimeoutCheck: number;
  /** Aborts sent, and Aborts that reported "not aborted" (DW0 bit 0). */
  abortsSent: number;
  abortsNotAborted: number;
  /** MSI-X messages received. */
  interrupts: number;
  /** MMIO doorbell writes, and doorbell updates skipped thanks to shadow doorbells/EventIdx. */
  mmioDoorbells: number;
  skippedDoorbells: number;
  asyncEvents: number;
  /** Commands the driver completed itself with HOST_ABORTED_STATUS (reset/shutdown). */
  hostAborted: number;
  resets: number;
}

type DriverState = "new" | "initializing" | "ready" | "resetting" | "shutting-down" | "shut-down" | "failed";

const noop = (): void => {};

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0) setImmediate(resolve);
    else setTimeout(resolve, ms);
  });
}

/** `GuestNvmeDriver.saveState()`: JSON-able with `stringifyState` (identify data holds bytes). */
export interface GuestNvmeDriverState {
  options: Required<
    Pick<
      GuestNvmeDriverOptions,
      | "ioQueues"
      | "ioQueueEntries"
      | "adminQueueEntries"
      | "completionMode"
      | "shadowDoorbells"
      | "ioTimeoutMs"
      | "adminTimeoutMs"
      | "asyncEventRequests"
      | "maxTransferBytes"
      | "shutdownTimeoutMs"
    >
  >;
  cap: Capabilities;
  readyTimeoutMs: number;
  msix: MsixInfo | null;
  identify: IdentifyController | null;
  namespaces: NamespaceInfo[];
  maxTransferBytes: number;
  shadowDoorbellsActive: boolean;
  dbbufGpa: DoorbellBuffers | null;
  scratchGpa: number;
  counters: DriverStats;
  asyncEvents: AsyncEvent[];
  aerOutstanding: number;
  abortsOutstanding: number;
  adminQueue: QueuePairState;
  ioQueues: QueuePairState[];
}

export class GuestNvmeDriver {
  private readonly ioQueuesWanted: number;
  private readonly ioEntriesWanted: number;
  private readonly adminEntriesWanted: number;
  readonly completionMode: "interrupt" | "polling";
  private readonly shadowWanted: boolean;
  readonly ioTimeoutMs: number;
  readonly adminTimeoutMs: number;
  private readonly aerWanted: number;
  private readonly maxTransferWanted: number;
  private readonly shutdownTimeoutMs: number;
  private readonly options: GuestNvmeDriverOptions;

  private state: DriverState = "new";
  /** CAP as read at the last bring-up (a constant of the function). */
  cap: Capabilities | undefined;
  private readyTimeoutMs = 500;
  private msix: MsixInfo | undefined;
  /** Identify Controller data of the last bring-up. */
  identify: IdentifyController | undefined;
  /** Active namespaces by NSID. */
  readonly namespaces = new Map<number, NamespaceInfo>();
  /** Largest transfer per command, bytes (after MDTS). */
  maxTransferBytes = 0;
  /** True when shadow doorbells are in use. */
  shadowDoorbellsActive = false;

  /** Guest-physical addresses of the Shadow Doorbell and EventIdx buffers while they are in use. */
  get doorbellBuffers(): DoorbellBuffers | undefined {
    return this.shadowDoorbellsActive ? this.dbbufGpa : undefined;
  }

  private adminQueue: QueuePair | undefined;
  /** I/O queue pairs by qid (index 0 unused). */
  private ioQueues: QueuePair[] = [];
  /** Queues reaped per MSI-X vector. */
  private vectorQueues: QueuePair[][] = [];
  private dbbufGpa: DoorbellBuffers | undefined;
  private scratchGpa = 0;

  private batchDepth = 0;
  /** `performance.now()` read when the outermost batch began (see `nowMs`). */
  private batchClockMs = 0;
  /** Queues to ring at the end of the batch: entries `0 .. pendingDoorbellCount-1`. */
  private readonly pendingDoorbells: QueuePair[] = [];
  private pendingDoorbellCount = 0;
  private pollScheduled = false;
  /** A poll was asked for inside the current batch (see `wantPoll`). */
  private pollAfterBatch = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly prpOut: PrpPair = { prp1: 0, prp2: 0 };
  private readonly adminBacklog: Array<() => void> = [];
  private abortsOutstanding = 0;
  /** What each admin slot's outstanding command is, for saved state: "aer", "abort", "log-page:<gpa>", "admin". */
  private readonly adminTokens: string[] = [];
  /** vCPUs stopped for a migration: nothing is submitted, reaped or timed out (see `freeze`). */
  private frozen = false;
  private aerOutstanding = 0;
  /** Admin commands outstanding other than AERs (they drive admin polling without MSI-X). */
  private adminWaiting = 0;

  private readonly counters: DriverStats = {
    ioSubmitted: 0,
    ioCompleted: 0,
    duplicateCompletions: 0,
    ioTimeouts: 0,
    completionsFoundByTimeoutCheck: 0,
    abortsSent: 0,
    abortsNotAborted: 0,
    interrupts: 0,
    mmioDoorbells: 0,
    skippedDoorbells: 0,
    asyncEvents: 0,
    hostAborted: 0,
    resets: 0,
  };
  /** The last Asynchronous Events (at most 64). */
  readonly asyncEvents: AsyncEvent[] = [];

  constructor(
    private readonly port: FunctionPort,
    private readonly mem: GuestMemory,
    options: GuestNvmeDriverOptions = {},
  ) {
    this.options = options;
    this.ioQueuesWanted = options.ioQueues ?? 1;
    this.ioEntriesWanted = options.ioQueueEntries ?? 128;
    this.adminEntriesWanted = options.adminQueueEntries ?? 32;
    this.completionMode = options.completionMode ?? "interrupt";
    this.shadowWanted = options.shadowDoorbells ?? false;
    this.ioTimeoutMs = options.ioTimeoutMs ?? 30000;
    this.adminTimeoutMs = options.adminTimeoutMs ?? 60000;
    this.aerWanted = options.asyncEventRequests ?? 1;
    this.maxTransferWanted = options.maxTransferBytes ?? 128 * 1024;
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5000;
    const intIn = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
    if (!intIn(this.ioQueuesWanted, 1, 65535)) this.badOption("ioQueues", this.ioQueuesWanted);
    if (!intIn(this.ioEntriesWanted, 2, 65536)) this.badOption("ioQueueEntries", this.ioEntriesWanted);
    if (!intIn(this.adminEntriesWanted, 2, 4096))
      this.badOption("adminQueueEntries", this.adminEntriesWanted);
    if (!(this.ioTimeoutMs >= 1)) this.badOption("ioTimeoutMs", this.ioTimeoutMs);
    if (!(this.adminTimeoutMs >= 1)) this.badOption("adminTimeoutMs", this.adminTimeoutMs);
    if (!intIn(this.aerWanted, 0, 256)) this.badOption("asyncEventRequests", this.aerWanted);
    if (!intIn(this.maxTransferWanted, GUEST_PAGE_BYTES, 2 ** 31)) {
      this.badOption("maxTransferBytes", this.maxTransferWanted);
    }
  }

  private badOption(name: string, value: unknown): never {
    throw new NvmeDriverError("invalid-argument", `option ${name} = ${String(value)} out of range`);
  }

  // =================================================================== public state

  /** True when I/O can be submitted. */
  get ready(): boolean {
    return this.state === "ready";
  }

  /** Number of I/O queue pairs (qids 1..ioQueueCount). */
  get ioQueueCount(): number {
    return this.ioQueues.length - 1;
  }

  /** Commands an I/O queue can hold outstanding at once (its queue depth). */
  ioQueueDepth(qid: number): number {
    return this.ioQueue(qid).slots;
  }

  /** I/O commands outstanding on all queues. */
  get ioOutstanding(): number {
    let n = 0;
    for (let i = 1; i < this.ioQueues.length; i++) n += this.ioQueues[i]!.outstandingCount;
    return n;
  }

  /** Outstanding I/O commands of one queue. */
  queueOutstanding(qid: number): number {
    return this.ioQueue(qid).outstandingCount;
  }

  /** Asynchronous Event Requests the controller holds now. */
  get asyncEventRequestsOutstanding(): number {
    return this.aerOutstanding;
  }

  /** Counters (a snapshot). */
  stats(): DriverStats {
    const s = { ...this.counters };
    for (const q of this.allQueues()) {
      s.duplicateCompletions += q.duplicateCompletions;
      s.mmioDoorbells += q.mmioDoorbells;
      s.skippedDoorbells += q.skippedDoorbells;
    }
    return s;
  }

  /** Reads CSTS now (for diagnostics; the driver itself keeps no copy). */
  readCsts(): Promise<number> {
    return this.port.read32(0, Reg.CSTS);
  }

  // =================================================================== bring-up

  /**
   * Brings the controller up (see the module comment). Throws `NvmeDriverError` when the controller
   * cannot be brought up; the driver is then in state "failed" (call `init` again to retry).
   */
  async init(): Promise<void> {
    if (this.state !== "new" && this.state !== "shut-down" && this.state !== "failed") {
      throw new NvmeDriverError("not-ready", `init() in state ${this.state}`);
    }
    this.state = "initializing";
    try {
      await this.bringUp();
      this.state = "ready";
    } catch (e) {
      this.state = "failed";
      this.stopSweep();
      throw e;
    }
  }

  private async bringUp(): Promise<void> {
    const port = this.port;
    await enablePciFunction(port);
    const capRaw = await port.read64(0, Reg.CAP);
    if (capRaw === 0xffff_ffff_ffff_ffffn) throw new NvmeDriverError("device-gone", "CAP reads all ones");
    const cap = decodeCap(capRaw);
    this.cap = cap;
    if ((cap.css & 1) === 0)
      throw new NvmeDriverError("unsupported", "CAP.CSS: NVM command set not supported");
    if (cap.mpsmin > 0) {
      throw new NvmeDriverError("unsupported", `CAP.MPSMIN ${cap.mpsmin}: 4 KiB memory pages not supported`);
    }
    this.readyTimeoutMs = Math.max(500, cap.to * 500);

    await this.disableController();

    // Admin queue (allocated once; reused by resets).
    const adminEntries = Math.min(this.adminEntriesWanted, cap.mqes + 1, 4096);
    if (this.adminQueue === undefined || this.adminQueue.entries !== adminEntries) {
      this.freeQueues();
      const sqGpa = this.mem.allocBytes(adminEntries * SQE_BYTES);
      const cqGpa = this.mem.allocBytes(adminEntries * CQE_BYTES);
      this.adminQueue = new QueuePair(
        port,
        this.mem,
        {
          qid: 0,
          entries: adminEntries,
          slots: adminEntries - 1,
          sqGpa,
          cqGpa,
          vector: 0,
          dstrd: cap.dstrd,
          prpListPagesPerSlot: 0,
          prpListGpa: 0,
        },
        this.duplicateSeen,
      );
      this.scratchGpa = this.mem.allocPages(1);
    }
    const aq = this.adminQueue;
    aq.resetRings();
    this.mem.fill(aq.cqGpa, aq.entries * CQE_BYTES, 0);
    port.write32(0, Reg.AQA, AQA.make(aq.entries - 1, aq.entries - 1));
    port.write64(0, Reg.ASQ, BigInt(aq.sqGpa));
    port.write64(0, Reg.ACQ, BigInt(aq.cqGpa));
    const cc = CC.make({
      en: false,
      css: 0,
      mps: 0,
      ams: 0,
      shn: ShutdownNotification.None,
      iosqes: SQE_SIZE_LOG2,
      iocqes: CQE_SIZE_LOG2,
    });
    port.write32(0, Reg.CC, cc);
    port.write32(0, Reg.CC, (cc | CC.EN) >>> 0);
    await this.waitReady(true);

    // Interrupts: MSI-X vector 0 for the admin CQ, 1.. for I/O CQs.
    this.msix = await readMsix(port);
    const ioVectors = this.completionMode === "interrupt" ? this.ioQueuesWanted : 0;
    if (this.msix !== undefined) await enableMsix(port, this.msix, 1 + ioVectors);
    port.onInterrupt(this.onVector);
    this.vectorQueues = [];
    this.addVectorQueue(0, aq);

    // Identify.
    const idc = await this.identifyController();
    this.identify = idc;
    const mdtsBytes = idc.mdts === 0 ? Number.POSITIVE_INFINITY : 2 ** idc.mdts * GUEST_PAGE_BYTES;
    this.maxTransferBytes = Math.min(this.maxTransferWanted, mdtsBytes);
    await this.identifyNamespaces(idc.nn);

    // Queues.
    const nq = await this.adminChecked(
      setNumberOfQueuesCommand(this.ioQueuesWanted - 1, this.ioQueuesWanted - 1),
      "Set Features (Number of Queues)",
    );
    const allocated = decodeNumberOfQueuesAllocated(nq.dw0);
    const granted = Math.min(allocated.nsqa + 1, allocated.ncqa + 1);
    const ioQueues = Math.min(this.ioQueuesWanted, granted);
    if (this.ioQueues.length > 1 && ioQueues !== this.ioQueues.length - 1) {
      throw new NvmeDriverError(
        "unsupported",
        `controller granted ${ioQueues} I/O queues after reset, had ${this.ioQueues.length - 1}`,
      );
    }

    this.shadowDoorbellsActive = false;
    if (this.shadowWanted && (idc.oacs & OACS_DBBUF) !== 0) await this.configureDoorbellBuffers();

    await this.createIoQueues(ioQueues, cap);
    this.armAsyncEvents();
    this.startSweep();
  }

  /** CC.EN ← 0 and wait for CSTS.RDY = 0 (after letting a pending enable finish, as the spec asks). */
  private async disableController(): Promise<void> {
    const cc = await this.port.read32(0, Reg.CC);
    const csts = await this.port.read32(0, Reg.CSTS);
    if (cc === 0xffffffff && csts === 0xffffffff)
      throw new NvmeDriverError("device-gone", "CC/CSTS read all ones");
    if ((cc & CC.EN) === 0 && (csts & CSTS.RDY) === 0) return;
    if ((cc & CC.EN) !== 0 && (csts & CSTS.RDY) === 0) {
      // EN 1 → 0 while RDY is still 0 has undefined results: wait for RDY first (best effort).
      await this.waitReady(true).catch(noop);
    }
    this.port.write32(0, Reg.CC, (cc & ~CC.EN & ~(0x3 << 14)) >>> 0);
    await this.waitReady(false);
  }

  /** Polls CSTS until RDY = `ready`, within CAP.TO. */
  private async waitReady(ready: boolean): Promise<void> {
    const start = performance.now();
    for (let i = 0; ; i++) {
      const csts = await this.port.read32(0, Reg.CSTS);
      if (csts === 0xffffffff) throw new NvmeDriverError("device-gone", "CSTS reads all ones");
      if (ready && (csts & CSTS.CFS) !== 0) {
        throw new NvmeDriverError("controller-fatal", "CSTS.CFS set while enabling");
      }
      if (((csts & CSTS.RDY) !== 0) === ready) return;
      if (performance.now() - start > this.readyTimeoutMs) {
        throw new NvmeDriverError(
          "not-ready-timeout",
          `CSTS.RDY did not become ${ready ? 1 : 0} within ${this.readyTimeoutMs} ms (CAP.TO)`,
        );
      }
      await delay(i < 8 ? 0 : 1);
    }
  }

  private async identifyController(): Promise<IdentifyController> {
    const data = await this.adminRead(
      identifyCommand(Cns.IdentifyController, 0, this.scratchGpa),
      "Identify Controller",
    );
    return decodeIdentifyController(data);
  }

  private async identifyNamespaces(nn: number): Promise<void> {
    const found = new Map<number, NamespaceInfo>();
    let nsids: number[];
    const list = await this.adminCommand(identifyCommand(Cns.ActiveNamespaceIdList, 0, this.scratchGpa));
    if (list.status === 0)
      nsids = decodeNamespaceList(this.mem.view(this.scratchGpa, GUEST_PAGE_BYTES).slice());
    else nsids = Array.from({ length: Math.min(nn, 1024) }, (_, i) => i + 1);
    for (const nsid of nsids) {
      const res = await this.adminCommand(identifyCommand(Cns.IdentifyNamespace, nsid, this.scratchGpa));
      if (res.status !== 0) continue;
      const idns = decodeIdentifyNamespace(this.mem.view(this.scratchGpa, GUEST_PAGE_BYTES).slice());
      if (idns.nsze === 0) continue;
      const lbaf = idns.lbaf[flbasIndex(idns.flbas)];
      const lbaBytes = lbaf === undefined ? 0 : bytesForLbads(lbaf.lbads);
      if (lbaBytes === 0) continue;
      found.set(nsid, { nsid, nsze: idns.nsze, lbaBytes, metadataBytes: lbaf!.ms, identify: idns });
    }
    this.namespaces.clear();
    for (const [nsid, info] of found) this.namespaces.set(nsid, info);
  }

  private async configureDoorbellBuffers(): Promise<void> {
    if (this.dbbufGpa === undefined) {
      this.dbbufGpa = { shadowGpa: this.mem.allocPages(1), eventIdxGpa: this.mem.allocPages(1) };
    }
    const { shadowGpa, eventIdxGpa } = this.dbbufGpa;
    this.mem.fill(shadowGpa, GUEST_PAGE_BYTES, 0);
    this.mem.fill(eventIdxGpa, GUEST_PAGE_BYTES, 0);
    const res = await this.adminCommand(doorbellBufferConfigCommand(shadowGpa, eventIdxGpa));
    if (res.status !== 0) return; // optional feature: carry on with MMIO doorbells
    this.shadowDoorbellsActive = true;
    this.adminQueue!.setDoorbellBuffers(this.dbbufGpa);
  }

  private vectorFor(qid: number): number {
    const n = this.msix?.tableSize ?? 1;
    if (qid < n) return qid;
    return n > 1 ? 1 + ((qid - 1) % (n - 1)) : 0;
  }

  private addVectorQueue(vector: number, q: QueuePair): void {
    while (this.vectorQueues.length <= vector) this.vectorQueues.push([]);
    this.vectorQueues[vector]!.push(q);
  }

  private async createIoQueues(count: number, cap: Capabilities): Promise<void> {
    const entries = Math.min(this.ioEntriesWanted, cap.mqes + 1);
    const listPages = prpListPagesForMaxTransfer(this.maxTransferBytes);
    const interrupts = this.completionMode === "interrupt" && this.msix !== undefined;
    const first = this.ioQueues.length <= 1;
    if (first) this.ioQueues = [this.adminQueue!];
    for (let qid = 1; qid <= count; qid++) {
      let q = this.ioQueues[qid];
      if (q === undefined) {
        const slots = entries - 1;
        q = new QueuePair(
          this.port,
          this.mem,
          {
            qid,
            entries,
            slots,
            sqGpa: this.mem.allocBytes(entries * SQE_BYTES),
            cqGpa: this.mem.allocBytes(entries * CQE_BYTES),
            vector: interrupts ? this.vectorFor(qid) : -1,
            dstrd: cap.dstrd,
            prpListPagesPerSlot: listPages,
            prpListGpa: listPages === 0 ? 0 : this.mem.allocPages(slots * listPages),
          },
          this.duplicateSeen,
        );
        this.ioQueues[qid] = q;
      }
      q.resetRings();
      this.mem.fill(q.cqGpa, q.entries * CQE_BYTES, 0);
      await this.adminChecked(
        createIoCqCommand(qid, q.entries - 1, q.cqGpa, Math.max(0, q.vector), q.vector >= 0),
        `Create I/O Completion Queue ${qid}`,
      );
      await this.adminChecked(
        createIoSqCommand(qid, q.entries - 1, q.sqGpa, qid),
        `Create I/O Submission Queue ${qid}`,
      );
      if (this.shadowDoorbellsActive) q.setDoorbellBuffers(this.dbbufGpa);
      if (q.vector >= 0) this.addVectorQueue(q.vector, q);
    }
  }

  private freeQueues(): void {
    for (const q of this.allQueues()) {
      this.mem.free(q.sqGpa);
      this.mem.free(q.cqGpa);
      if (q.prpListPagesPerSlot > 0) this.mem.free(q.prpListGpa);
    }
    if (this.adminQueue !== undefined) this.mem.free(this.scratchGpa);
    this.adminQueue = undefined;
    this.ioQueues = [];
  }

  private *allQueues(): Generator<QueuePair> {
    if (this.adminQueue !== undefined) yield this.adminQueue;
    for (let i = 1; i < this.ioQueues.length; i++) yield this.ioQueues[i]!;
  }

  // =================================================================== admin commands

  /**
   * Sends an admin command (the driver fills in the CID) and resolves with its completion; an error
   * status is a value, not a rejection. Rejects with `admin-timeout` after `timeoutMs` (default the
   * driver's `adminTimeoutMs`), or `not-ready` when the controller is not running.
   */
  adminCommand(fields: AdminSqe, options: { timeoutMs?: number; token?: string } = {}): Promise<AdminResult> {
    return new Promise<AdminResult>((resolve, reject) => {
      if (this.state === "new" || this.state === "shut-down" || this.state === "failed") {
        reject(new NvmeDriverError("not-ready", `admin command in state ${this.state}`));
        return;
      }
      const timeoutMs = options.timeoutMs ?? this.adminTimeoutMs;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      this.adminWaiting++;
      const done = (status: number, dw0: number) => {
        if (settled) return;
        settled = true;
        this.adminWaiting--;
        if (timer !== undefined) clearTimeout(timer);
        resolve({ status, dw0, dw1: this.adminQueue?.lastDw1 ?? 0 });
      };
      timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.adminWaiting--;
        reject(
          new NvmeDriverError(
            "admin-timeout",
            `admin opcode 0x${fields.opc.toString(16)} timed out after ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      this.submitAdmin(fields, done, false, options.token ?? "admin");
    });
  }

  /** Submits now, or when an admin slot frees up. */
  private submitAdmin(fields: AdminSqe, cb: CompletionCallback, noTimeout: boolean, token: string): void {
    const aq = this.adminQueue;
    if (aq === undefined) {
      cb(HOST_ABORTED_STATUS, 0, 0);
      return;
    }
    const slot = aq.allocSlot();
    if (slot < 0) {
      this.adminBacklog.push(() => this.submitAdmin(fields, cb, noTimeout, token));
      return;
    }
    this.adminTokens[slot] = token;
    encodeSqe({ ...fields, cid: aq.cids[slot]! }, this.mem.dataView, aq.tailEntryGpa);
    aq.commit(slot, this.adminDone(cb), performance.now());
    if (noTimeout) aq.noTimeout[slot] = 1;
    this.ring(aq);
    this.wantPoll();
  }

  /** Wraps an admin callback so that a freed slot serves the backlog. */
  private adminDone(cb: CompletionCallback): CompletionCallback {
    return (status, dw0, cid) => {
      cb(status, dw0, cid);
      const next = this.adminBacklog.shift();
      if (next !== undefined) next();
    };
  }

  /** An admin command that must succeed during bring-up. */
  private async adminChecked(fields: AdminSqe, what: string): Promise<AdminResult> {
    const res = await this.adminCommand(fields);
    if (res.status !== 0) {
      throw new NvmeDriverError("admin-failed", `${what} failed with status 0x${res.status.toString(16)}`, {
        status: res.status,
      });
    }
    return res;
  }

  /** An admin command returning one page of data into the scratch page; returns a copy. */
  private async adminRead(fields: AdminSqe, what: string): Promise<Uint8Array> {
    await this.adminChecked(fields, what);
    return this.mem.view(this.scratchGpa, GUEST_PAGE_BYTES).slice();
  }

  private armAsyncEvents(): void {
    this.aerOutstanding = 0;
    const limit = Math.min(this.aerWanted, (this.identify?.aerl ?? 0) + 1);
    for (let i = 0; i < limit; i++) this.submitAer();
  }

  private submitAer(): void {
    this.aerOutstanding++;
    this.submitAdmin(asyncEventRequestCommand(), this.aerCompleted, true, "aer");
  }

  private readonly aerCompleted: CompletionCallback = (status, dw0) => {
    this.aerOutstanding--;
    if (status !== 0) return; // aborted (reset, SQ deletion) or limit exceeded: do not re-arm
    const event: AsyncEvent = {
      type: dw0 & 0x7,
      info: (dw0 >>> 8) & 0xff,
      logPageId: (dw0 >>> 16) & 0xff,
      dw0,
    };
    this.counters.asyncEvents++;
    this.asyncEvents.push(event);
    if (this.asyncEvents.length > 64) this.asyncEvents.shift();
    this.options.onAsyncEvent?.(event);
    if (this.state !== "ready" && this.state !== "initializing") return;
    // Reading the log page clears the event (RAE = 0) so the controller reports that type again.
    const logGpa = this.mem.allocPages(1);
    this.submitAdmin(
      getLogPageCommand(event.logPageId, GUEST_PAGE_BYTES, logGpa),
      this.logPageDone(logGpa),
      false,
      `log-page:${logGpa}`,
    );
  };

  private logPageDone(logGpa: number): CompletionCallback {
    return () => {
      this.mem.free(logGpa);
      if (this.state === "ready") this.submitAer();
    };
  }

  // =================================================================== I/O submission

  private ioQueue(qid: number): QueuePair {
    const q = qid >= 1 ? this.ioQueues[qid] : undefined;
    if (q === undefined) throw new NvmeDriverError("invalid-argument", `no I/O queue ${qid}`);
    return q;
  }

  /**
   * Submits an I/O command built by `fill`, which writes the SQE fields at `sqe[at .. at+64)` (the
   * entry is zeroed first; the driver then sets the CID). Returns the CID, or -1 when the queue has no
   * free slot or the driver is not ready. `onComplete(status, dw0, cid)` runs exactly once.
   */
  submitIo(qid: number, fill: (sqe: DataView, at: number) => void, onComplete: CompletionCallback): number {
    const q = this.ioQueue(qid);
    if (this.state !== "ready" || this.frozen) return -1;
    const slot = q.allocSlot();
    if (slot < 0) return -1;
    const at = q.tailEntryGpa;
    this.mem.bytes.fill(0, at, at + SQE_BYTES);
    try {
      fill(this.mem.dataView, at);
    } catch (e) {
      q.cancelSlot(slot);
      throw e;
    }
    const cid = q.cids[slot]!;
    this.mem.dataView.setUint16(at + 2, cid, true);
    return this.commitIo(q, slot, onComplete, cid);
  }

  /** Read (02h) of `nlb` blocks (1-based count) at `slba` into the contiguous buffer at `bufferGpa`. */
  submitRead(
    qid: number,
    nsid: number,
    slba: number,
    nlb: number,
    bufferGpa: number,
    onComplete: CompletionCallback,
  ): number {
    return this.submitRw(NvmOpcode.Read, qid, nsid, slba, nlb, bufferGpa, onComplete);
  }

  /** Write (01h) of `nlb` blocks (1-based count) at `slba` from the contiguous buffer at `bufferGpa`. */
  submitWrite(
    qid: number,
    nsid: number,
    slba: number,
    nlb: number,
    bufferGpa: number,
    onComplete: CompletionCallback,
  ): number {
    return this.submitRw(NvmOpcode.Write, qid, nsid, slba, nlb, bufferGpa, onComplete);
  }

  /** Flush (00h) of namespace `nsid`. */
  submitFlush(qid: number, nsid: number, onComplete: CompletionCallback): number {
    return this.submitIo(
      qid,
      (v, at) => {
        v.setUint8(at, NvmOpcode.Flush);
        v.setUint32(at + 4, nsid, true);
      },
      onComplete,
    );
  }

  private submitRw(
    opc: number,
    qid: number,
    nsid: number,
    slba: number,
    nlb: number,
    bufferGpa: number,
    onComplete: CompletionCallback,
  ): number {
    const q = this.ioQueue(qid);
    if (this.state !== "ready" || this.frozen) return -1;
    const ns = this.namespaces.get(nsid);
    if (ns === undefined) throw new NvmeDriverError("invalid-argument", `no namespace ${nsid}`);
    const lengthBytes = nlb * ns.lbaBytes;
    if (!Number.isInteger(nlb) || nlb < 1 || nlb > 65536 || lengthBytes > this.maxTransferBytes) {
      throw new NvmeDriverError(
        "invalid-argument",
        `${nlb} blocks of ${ns.lbaBytes} bytes exceed the ${this.maxTransferBytes}-byte transfer limit`,
      );
    }
    const slot = q.allocSlot();
    if (slot < 0) return -1;
    const prp = this.prpOut;
    if (!buildPrps(this.mem, bufferGpa, lengthBytes, q.prpListGpaOf(slot), q.prpListPagesPerSlot, prp)) {
      q.cancelSlot(slot);
      throw new NvmeDriverError(
        "invalid-argument",
        `buffer 0x${bufferGpa.toString(16)} is not dword aligned`,
      );
    }
    const v = this.mem.dataView;
    const at = q.tailEntryGpa;
    const cid = q.cids[slot]!;
    // CDW0: OPC, FUSE 0, PSDT 0 (PRPs), CID.
    v.setUint32(at, (opc | (cid << 16)) >>> 0, true);
    v.setUint32(at + 4, nsid, true);
    v.setUint32(at + 8, 0, true);
    v.setUint32(at + 12, 0, true);
    v.setUint32(at + 16, 0, true);
    v.setUint32(at + 20, 0, true);
    v.setUint32(at + 24, prp.prp1 >>> 0, true);
    v.setUint32(at + 28, Math.floor(prp.prp1 / 0x1_0000_0000), true);
    v.setUint32(at + 32, prp.prp2 >>> 0, true);
    v.setUint32(at + 36, Math.floor(prp.prp2 / 0x1_0000_0000), true);
    // CDW10/11: SLBA; CDW12: NLB 0's based (bits 15:0), no FUA/LR; CDW13..15: 0.
    v.setUint32(at + 40, slba >>> 0, true);
    v.setUint32(at + 44, Math.floor(slba / 0x1_0000_0000), true);
    v.setUint32(at + 48, (nlb - 1) & 0xffff, true);
    v.setUint32(at + 52, 0, true);
    v.setUint32(at + 56, 0, true);
    v.setUint32(at + 60, 0, true);
    return this.commitIo(q, slot, onComplete, cid);
  }

  private commitIo(q: QueuePair, slot: number, onComplete: CompletionCallback, cid: number): number {
    q.commit(slot, onComplete, this.nowMs());
    this.counters.ioSubmitted++;
    this.ring(q);
    if (q.vector < 0) this.wantPoll();
    return cid;
  }

  /**
   * The driver's clock, ms (`performance.now()` time base): inside a batch (an interrupt handler, a
   * poll, `batch()`) it is the time the batch began, read once, so the commands submitted and
   * completed together share one clock read — Linux's block layer caches its time per plug the
   * same way. Submission times (for `ioTimeoutMs`) and workload latencies use it.
   */
  nowMs(): number {
    return this.batchDepth > 0 ? this.batchClockMs : performance.now();
  }

  private enterBatch(): void {
    if (this.batchDepth++ === 0) this.batchClockMs = performance.now();
  }

  private leaveBatch(): void {
    if (--this.batchDepth !== 0) return;
    this.flushDoorbells();
    if (this.pollAfterBatch) {
      this.pollAfterBatch = false;
      this.kickPoller();
    }
  }

  /** Rings now, or at the end of the current batch. */
  private ring(q: QueuePair): void {
    if (this.batchDepth === 0) {
      q.ringSq();
      return;
    }
    const p = this.pendingDoorbells;
    for (let i = 0; i < this.pendingDoorbellCount; i++) if (p[i] === q) return;
    p[this.pendingDoorbellCount++] = q;
  }

  /**
   * Runs `fn` with SQ doorbells deferred: every queue submitted to inside is rung once at the end.
   * Completion callbacks already run inside such a batch.
   */
  batch<T>(fn: () => T): T {
    this.enterBatch();
    try {
      return fn();
    } finally {
      this.leaveBatch();
    }
  }

  private flushDoorbells(): void {
    const p = this.pendingDoorbells;
    const n = this.pendingDoorbellCount;
    this.pendingDoorbellCount = 0;
    for (let i = 0; i < n; i++) p[i]!.ringSq();
  }

  // =================================================================== completions

  private readonly duplicateSeen = (qid: number, cid: number): void => {
    this.options.onDuplicateCompletion?.(qid, cid);
  };

  private readonly onVector = (vector: number): void => {
    this.counters.interrupts++;
    if (this.frozen) return; // reaped on thaw / resumeAfterMigration
    const qs = this.vectorQueues[vector];
    if (qs === undefined) return;
    this.enterBatch();
    try {
      for (let i = 0; i < qs.length; i++) this.reapQueue(qs[i]!);
    } finally {
      this.leaveBatch();
    }
  };

  private reapQueue(q: QueuePair): number {
    const n = q.reap();
    if (q.qid !== 0) this.counters.ioCompleted += n;
    return n;
  }

  /** Reaps every queue (admin included); returns the CQ entries consumed. */
  poll(): number {
    if (this.frozen) return 0;
    let n = 0;
    this.enterBatch();
    try {
      // Plain loops rather than `allQueues()`: polling mode calls this on every turn.
      if (this.adminQueue !== undefined) n += this.reapQueue(this.adminQueue);
      const io = this.ioQueues;
      for (let i = 1; i < io.length; i++) n += this.reapQueue(io[i]!);
    } finally {
      this.leaveBatch();
    }
    return n;
  }

  /**
   * Asks for a poll. Inside a batch the poller is scheduled after the batch's doorbells, so that
   * the controller pass those doorbells schedule runs first and the poll finds its completions.
   */
  private wantPoll(): void {
    if (this.batchDepth > 0) this.pollAfterBatch = true;
    else this.kickPoller();
  }

  private kickPoller(): void {
    if (this.pollScheduled) return;
    const needed = this.completionMode === "polling" || this.msix === undefined;
    if (!needed) return;
    this.pollScheduled = true;
    setImmediate(this.pollTick);
  }

  private readonly pollTick = (): void => {
    this.pollScheduled = false;
    if (this.state === "shut-down" || this.state === "new" || this.frozen) return; // thaw re-kicks
    this.poll();
    const adminPolled = this.msix === undefined && this.adminWaiting > 0;
    if (this.completionMode === "polling" || this.msix === undefined) {
      if (this.ioOutstanding > 0 || adminPolled) this.kickPoller();
    }
  };

  // =================================================================== timeouts

  private startSweep(): void {
    this.stopSweep();
    const intervalMs = Math.min(1000, Math.max(5, this.ioTimeoutMs / 4));
    this.sweepTimer = setInterval(this.sweep, intervalMs);
    this.sweepTimer.unref();
  }

  private stopSweep(): void {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private readonly sweep = (): void => {
    if (this.state !== "ready" || this.frozen) return;
    const now = performance.now();
    const limit = this.ioTimeoutMs;
    for (let qid = 1; qid < this.ioQueues.length; qid++) {
      const q = this.ioQueues[qid]!;
      if (q.outstandingCount === 0) continue;
      if (!this.anyExpired(q, now, limit)) continue;
      // As Linux does: the completion may be sitting in the CQ (a missed interrupt).
      this.enterBatch();
      try {
        this.counters.completionsFoundByTimeoutCheck += this.reapQueue(q);
      } finally {
        this.leaveBatch();
      }
      for (let slot = 0; slot < q.slots; slot++) {
        if (q.outstanding[slot] !== 1 || q.noTimeout[slot] === 1) continue;
        if (now - q.submittedAtMs[slot]! <= limit) continue;
        const cid = q.cids[slot]!;
        if (q.abortSent[slot] === 0) {
          q.abortSent[slot] = 1;
          this.counters.ioTimeouts++;
          this.options.onIoTimeout?.(qid, cid);
        }
        if (q.abortSent[slot] === 1 && this.abortsOutstanding < (this.identify?.acl ?? 0) + 1) {
          q.abortSent[slot] = 2;
          this.sendAbort(qid, cid);
        }
      }
    }
  };

  private anyExpired(q: QueuePair, now: number, limit: number): boolean {
    for (let slot = 0; slot < q.slots; slot++) {
      if (q.outstanding[slot] === 1 && q.abortSent[slot] !== 2 && q.noTimeout[slot] === 0) {
        if (now - q.submittedAtMs[slot]! > limit) return true;
      }
    }
    return false;
  }

  private sendAbort(sqid: number, cid: number): void {
    this.abortsOutstanding++;
    this.counters.abortsSent++;
    this.adminCommand(abortCommand(sqid, cid), { token: "abort" }).then(
      (res) => {
        this.abortsOutstanding--;
        if (res.status === 0 && (res.dw0 & 1) === 1) this.counters.abortsNotAborted++;
      },
      () => {
        this.abortsOutstanding--;
      },
    );
  }

  // =================================================================== migration (vCPU state)

  /**
   * Stops the guest's CPU work for a migration: from now on nothing is submitted (submissions return
   * -1, as for a full queue), reaped, or timed out, so guest RAM and this object stay as they are until
   * `thaw()` (rollback) or `saveState()` (switchover).
   */
  freeze(): void {
    this.frozen = true;
  }

  /** Undoes `freeze()` (the migration rolled back): reaps whatever completed meanwhile. */
  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    this.poll();
    this.kickPoller();
  }

  /** The guest continues in another VMM: stop the timeout sweep for good (this copy stays frozen). */
  endMigratedAway(): void {
    this.frozen = true;
    this.stopSweep();
    this.port.onInterrupt(noop);
  }

  get isFrozen(): boolean {
    return this.frozen;
  }

  /**
   * The driver's state for the destination VMM (`guest-state.ts`), taken while frozen. `ioTokenOf`
   * names the owner of each outstanding I/O callback (the workload's command contexts); a callback it
   * does not know is saved as "dropped" (its completion is then ignored on the destination).
   * @throws NvmeDriverError `not-ready` unless the driver is ready and frozen.
   */
  saveState(ioTokenOf: (cb: CompletionCallback) => string | undefined): GuestNvmeDriverState {
    if (this.state !== "ready" || !this.frozen || this.adminQueue === undefined || this.cap === undefined) {
      throw new NvmeDriverError(
        "not-ready",
        `saveState() in state ${this.state}${this.frozen ? "" : " (not frozen)"}`,
      );
    }
    const now = performance.now();
    return {
      options: {
        ioQueues: this.ioQueuesWanted,
        ioQueueEntries: this.ioEntriesWanted,
        adminQueueEntries: this.adminEntriesWanted,
        completionMode: this.completionMode,
        shadowDoorbells: this.shadowWanted,
        ioTimeoutMs: this.ioTimeoutMs,
        adminTimeoutMs: this.adminTimeoutMs,
        asyncEventRequests: this.aerWanted,
        maxTransferBytes: this.maxTransferWanted,
        shutdownTimeoutMs: this.shutdownTimeoutMs,
      },
      cap: this.cap,
      readyTimeoutMs: this.readyTimeoutMs,
      msix: this.msix ?? null,
      identify: this.identify ?? null,
      namespaces: Array.from(this.namespaces.values()),
      maxTransferBytes: this.maxTransferBytes,
      shadowDoorbellsActive: this.shadowDoorbellsActive,
      dbbufGpa: this.dbbufGpa ?? null,
      scratchGpa: this.scratchGpa,
      counters: { ...this.counters },
      asyncEvents: this.asyncEvents.slice(),
      aerOutstanding: this.aerOutstanding,
      abortsOutstanding: this.abortsOutstanding,
      adminQueue: this.adminQueue.saveState(now, (slot) => this.adminTokens[slot] ?? "admin"),
      ioQueues: this.ioQueues
        .slice(1)
        .map((q) => q.saveState(now, (_slot, cb) => ioTokenOf(cb) ?? "dropped")),
    };
  }

  /**
   * A driver continuing a migrated guest on `port` (attached to the destination function, which runs
   * the migrated controller) and `mem` (the migrated RAM). It starts frozen; `resumeAfterMigration()`
   * lets it run. `ioCallbackFor` turns saved I/O tokens back into callbacks; `hooks` are the
   * non-serialisable options (event callbacks).
   * @throws NvmeDriverError `invalid-argument` / RangeError for a state that does not fit.
   */
  static restore(
    port: FunctionPort,
    mem: GuestMemory,
    saved: GuestNvmeDriverState,
    ioCallbackFor: (token: string) => CompletionCallback,
    hooks: Pick<GuestNvmeDriverOptions, "onAsyncEvent" | "onIoTimeout" | "onDuplicateCompletion"> = {},
  ): GuestNvmeDriver {
    const d = new GuestNvmeDriver(port, mem, { ...saved.options, ...hooks });
    const cap = saved.cap;
    d.cap = cap;
    d.readyTimeoutMs = saved.readyTimeoutMs;
    d.msix = saved.msix ?? undefined;
    d.identify = saved.identify ?? undefined;
    for (const ns of saved.namespaces) d.namespaces.set(ns.nsid, ns);
    d.maxTransferBytes = saved.maxTransferBytes;
    d.shadowDoorbellsActive = saved.shadowDoorbellsActive;
    d.dbbufGpa = saved.dbbufGpa ?? undefined;
    d.scratchGpa = saved.scratchGpa;
    Object.assign(d.counters, saved.counters);
    d.asyncEvents.push(...saved.asyncEvents);
    d.aerOutstanding = saved.aerOutstanding;
    d.abortsOutstanding = saved.abortsOutstanding;
    const now = performance.now();
    const aq = new QueuePair(port, mem, { ...saved.adminQueue.config, dstrd: cap.dstrd }, d.duplicateSeen);
    aq.loadState(saved.adminQueue, now, (token, slot) => {
      d.adminTokens[slot] = token;
      return d.adminDone(d.adminCallbackFor(token));
    });
    d.adminQueue = aq;
    d.ioQueues = [aq];
    d.vectorQueues = [];
    d.addVectorQueue(0, aq);
    for (const qs of saved.ioQueues) {
      const q = new QueuePair(port, mem, { ...qs.config, dstrd: cap.dstrd }, d.duplicateSeen);
      q.loadState(qs, now, (token) => (token === "dropped" ? noop : ioCallbackFor(token)));
      if (q.qid !== d.ioQueues.length)
        throw new NvmeDriverError("invalid-argument", `saved queue ${q.qid} out of order`);
      d.ioQueues.push(q);
      if (q.vector >= 0) d.addVectorQueue(q.vector, q);
    }
    d.state = "ready";
    d.frozen = true;
    port.onInterrupt(d.onVector);
    d.startSweep();
    return d;
  }

  private adminCallbackFor(token: string): CompletionCallback {
    if (token === "aer") return this.aerCompleted;
    if (token === "abort") return () => void this.abortsOutstanding--;
    if (token.startsWith("log-page:")) return this.logPageDone(Number(token.slice("log-page:".length)));
    return noop; // an admin command whose waiter stayed on the source
  }

  /**
   * Lets a restored driver run: rings every doorbell with its current value (writes the source held
   * while its vCPUs were stopped never reached a device) and reaps every queue (interrupts raised
   * before this VMM listened are gone, their completions are in the CQs).
   */
  resumeAfterMigration(): void {
    if (!this.frozen) return;
    this.frozen = false;
    for (const q of this.allQueues()) q.ringBoth();
    this.poll();
    this.kickPoller();
  }

  // =================================================================== shutdown / reset

  /** Completes every outstanding command with HOST_ABORTED_STATUS (the controller lost them). */
  private failOutstanding(): void {
    this.adminBacklog.length = 0;
    for (const q of this.allQueues()) this.counters.hostAborted += q.failAll(HOST_ABORTED_STATUS);
    this.aerOutstanding = 0;
  }

  /**
   * Resets the controller (CC.EN ← 0) and brings it up again on the same queue memory: outstanding
   * commands complete with HOST_ABORTED_STATUS, I/O queues are re-created, AERs re-armed.
   */
  async resetController(): Promise<void> {
    if (this.state !== "ready" && this.state !== "failed") {
      throw new NvmeDriverError("not-ready", `resetController() in state ${this.state}`);
    }
    this.state = "resetting";
    this.counters.resets++;
    this.stopSweep();
    try {
      await this.disableController();
      this.failOutstanding();
      this.shadowDoorbellsActive = false;
      for (const q of this.allQueues()) q.setDoorbellBuffers(undefined);
      this.state = "initializing";
      await this.bringUp();
      this.state = "ready";
    } catch (e) {
      this.state = "failed";
      this.stopSweep();
      throw e;
    }
  }

  /**
   * Normal shutdown: deletes the I/O queues, sets CC.SHN = 01b and waits for CSTS.SHST = 10b. Call it
   * with no I/O outstanding; anything still outstanding completes with HOST_ABORTED_STATUS.
   */
  async shutdown(): Promise<void> {
    if (this.state !== "ready" && this.state !== "failed") {
      throw new NvmeDriverError("not-ready", `shutdown() in state ${this.state}`);
    }
    const wasReady = this.state === "ready";
    this.state = "shutting-down";
    this.stopSweep();
    try {
      if (wasReady) {
        const timeoutMs = Math.min(this.adminTimeoutMs, this.shutdownTimeoutMs);
        for (let qid = this.ioQueues.length - 1; qid >= 1; qid--) {
          await this.adminCommand(deleteIoSqCommand(qid), { timeoutMs }).catch(noop);
        }
        for (let qid = this.ioQueues.length - 1; qid >= 1; qid--) {
          await this.adminCommand(deleteIoCqCommand(qid), { timeoutMs }).catch(noop);
        }
      }
      const cc = await this.port.read32(0, Reg.CC);
      this.port.write32(0, Reg.CC, ((cc & ~(0x3 << 14)) | (ShutdownNotification.Normal << 14)) >>> 0);
      const start = performance.now();
      for (let i = 0; ; i++) {
        const csts = await this.port.read32(0, Reg.CSTS);
        if (csts === 0xffffffff) throw new NvmeDriverError("device-gone", "CSTS reads all ones");
        if ((csts & CSTS.SHST_MASK) >>> CSTS.SHST_SHIFT === ShutdownStatus.Complete) break;
        if (performance.now() - start > this.shutdownTimeoutMs) {
          throw new NvmeDriverError(
            "shutdown-timeout",
            `CSTS.SHST not complete after ${this.shutdownTimeoutMs} ms`,
          );
        }
        await delay(i < 8 ? 0 : 1);
      }
    } finally {
      this.failOutstanding();
      this.port.onInterrupt(noop);
      if (this.msix !== undefined) await disableMsix(this.port, this.msix).catch(noop);
      this.state = "shut-down";
    }
  }
}
