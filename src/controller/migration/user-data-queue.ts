/**
 * User Data Migration Queues (TP4159 Controller Data Queue, QT 0) and Track Send "Log User Data Changes".
 *
 * A UDMQ lives in the controlling (primary) function's memory. While logging is on, every completed
 * change of logical blocks by the controlled controller (Write, Write Zeroes, Deallocate) is posted as a
 * 32-byte entry with the current phase tag; the host consumes entries CQ-style and advances the head
 * with Set Features 21h (HP). Sequence marks:
 *   ESA 1 (first)            — the first entry after logging starts
 *   ESA 2 (last, stopped)    — Track Send LACT 0; LBACIR 2 (no range)
 *   ESA 3 (last, suspended)  — the controlled controller was suspended; LBACIR 2
 *   ESA 7 (last, queue full) — only one slot was left: LBACIR 1 (treat every LBA as changed); logging stops
 */
import {
  Esa,
  encodeUserDataMigrationQueueEntry,
  Lbacir,
  UDMQ_ENTRY_BYTES,
} from "../../nvme/controller-data-queue.ts";
import type { NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";

export class UserDataMigrationQueue {
  /** Controller's next slot to write. */
  tail = 0;
  /** Host's head (Set Features 21h HP): next slot it will consume. */
  head = 0;
  phase = 1;
  /** Tail Pointer Trigger slot and whether it is enabled (kept for Get Features). */
  tpt = 0;
  etpt = false;
  logging = false;
  private firstPending = false;
  private observer: ((nsid: number, slba: number, nlb: number, dealloc: boolean) => void) | undefined;
  private readonly entry = new Uint8Array(UDMQ_ENTRY_BYTES);

  constructor(
    readonly cdqid: number,
    /** CNTLID of the controller whose user-data changes are logged (CQS). */
    readonly target: NvmeController,
    /** The controlling controller (its DMA map holds the queue). */
    readonly owner: NvmeController,
    readonly baseIova: number,
    readonly sizeEntries: number,
  ) {}

  startLogging(): void {
    if (this.logging) return;
    this.logging = true;
    this.firstPending = true;
    this.observer = (nsid, slba, nlb, dealloc) =>
      this.post(nsid, slba, nlb, dealloc, Esa.None, Lbacir.RangeValid);
    this.target.lbaWriteObservers = [...this.target.lbaWriteObservers, this.observer];
  }

  /** Stops logging, posting a last entry with `esa` (LastLoggingStopped or LastControllerSuspended). */
  stopLogging(esa: number): void {
    if (!this.logging) return;
    this.post(0, 0, 0, false, esa, Lbacir.NoRange);
    this.detach();
  }

  /** Drops the queue (Delete, or controller reset): no further entries. */
  destroy(): void {
    this.detach();
  }

  private detach(): void {
    this.logging = false;
    const o = this.observer;
    if (o !== undefined) this.target.lbaWriteObservers = this.target.lbaWriteObservers.filter((x) => x !== o);
    this.observer = undefined;
  }

  private freeSlots(): number {
    const used = this.tail >= this.head ? this.tail - this.head : this.tail + this.sizeEntries - this.head;
    return this.sizeEntries - 1 - used;
  }

  private post(nsid: number, slba: number, nlb: number, dlba: boolean, esa: number, lbacir: number): void {
    if (!this.logging) return;
    let e = esa;
    let cir = lbacir;
    if (this.freeSlots() <= 1 && esa === Esa.None) {
      // Last slot: report "queue full, everything changed" and stop logging.
      e = Esa.LastQueueFull;
      cir = Lbacir.AllChanged;
    }
    if (this.freeSlots() <= 0) return;
    if (this.firstPending && e === Esa.None) e = Esa.First;
    this.firstPending = false;
    encodeUserDataMigrationQueueEntry(
      { nsid, nlb: nlb > 0 ? nlb - 1 : 0, slba, phase: this.phase, esa: e, dlba, lbacir: cir },
      this.entry,
    );
    const at = this.baseIova + this.tail * UDMQ_ENTRY_BYTES;
    if (!this.owner.dma.write(at, this.entry)) {
      emitEvent(ControllerEvent.udmqEntry, this.owner.cntlid, {
        cdqid: this.cdqid,
        error: "queue-not-mapped",
      });
      this.detach();
      return;
    }
    this.tail++;
    if (this.tail === this.sizeEntries) {
      this.tail = 0;
      this.phase ^= 1;
    }
    if (e === Esa.LastQueueFull) this.detach();
  }
}

/** The UDMQs of one controlling controller, by CDQID. */
const queues = new WeakMap<NvmeController, Map<number, UserDataMigrationQueue>>();

export function udmqsOf(owner: NvmeController): Map<number, UserDataMigrationQueue> {
  let m = queues.get(owner);
  if (m === undefined) {
    m = new Map();
    queues.set(owner, m);
  }
  return m;
}
