/**
 * Submission and completion queues as the controller sees them (NVMe Base 2.1 §3.3).
 *
 * Queues are physically contiguous (CAP.CQR = 1), so each resolves once, at creation, to a direct
 * window in guest memory; the hot path then reads SQEs and writes CQEs without a map lookup.
 * `sizeEntries` is the 1-based entry count (the Create commands carry it 0's based).
 */
import type { DmaRegion } from "../memory/dma.ts";

export class SubmissionQueue {
  /** Controller's head: next entry to fetch. */
  head = 0;
  /** Tail as last written by the host (doorbell or shadow doorbell). */
  tail = 0;
  /** Commands fetched from this queue and not yet completed. */
  inflight = 0;
  constructor(
    readonly sqid: number,
    readonly cqid: number,
    /** Guest-physical base address (PRP1 of Create I/O SQ / ASQ). */
    readonly baseIova: number,
    readonly sizeEntries: number,
    /** Queue Priority (QPRIO) from Create I/O SQ; 0 urgent .. 3 low. */
    readonly qprio: number,
    readonly region: DmaRegion,
    /** Byte offset of entry 0 in `region`. */
    readonly regionOffset: number,
  ) {}

  get pending(): number {
    const d = this.tail - this.head;
    return d >= 0 ? d : d + this.sizeEntries;
  }
}

export class CompletionQueue {
  /** Controller's tail: next slot to write. */
  tail = 0;
  /** Head as last written by the host. */
  head = 0;
  /** Phase tag the controller writes in the current pass over the queue. Starts at 1. */
  phase = 1;
  /** Completions waiting because the queue was full, in order. */
  readonly overflow: PendingCompletion[] = [];
  /** SQs that post to this CQ. */
  sqCount = 0;
  /** An interrupt is owed for entries posted since the last signal. */
  interruptPending = false;
  constructor(
    readonly cqid: number,
    readonly baseIova: number,
    readonly sizeEntries: number,
    /** Interrupts Enabled (IEN). */
    readonly ien: boolean,
    /** Interrupt Vector (IV). */
    readonly iv: number,
    readonly region: DmaRegion,
    readonly regionOffset: number,
  ) {}

  get full(): boolean {
    const next = this.tail + 1 === this.sizeEntries ? 0 : this.tail + 1;
    return next === this.head;
  }
}

export interface PendingCompletion {
  dw0: number;
  dw1: number;
  sqid: number;
  cid: number;
  status: number;
}
