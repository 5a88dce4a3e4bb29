/**
 * Asynchronous Event Request handling and the Error Information log (NVMe Base 2.1 §5.2, §5.16.1.2).
 *
 * Up to AERL+1 AER commands are held outstanding. An event completes one of them (CQE DW0: event type
 * bits 2:0, event information bits 15:8, associated log page bits 23:16); if none is outstanding the
 * event waits. After an event of a type is reported, further events of that type are masked until the
 * host reads the associated log page with RAE = 0.
 */
import { AsyncEventType, LogPageId } from "../nvme/identifiers.ts";
import type { NvmeController } from "./controller.ts";
import { ControllerEvent, emitEvent } from "./events.ts";
import type { SubmissionQueue } from "./queues.ts";

/** AERL (0's based): four outstanding Asynchronous Event Requests. */
export const AERL = 3;
/** Error Information Log Page Entries (ELPE, 0's based): 64 entries. */
export const ELPE = 63;

export interface PendingAsyncEvent {
  type: number;
  info: number;
  logPage: number;
}

export interface ErrorLogEntry {
  errorCount: bigint;
  sqid: number;
  cid: number;
  status: number;
  nsid: number;
}

export class AsyncEvents {
  /** CIDs of outstanding AER commands (all on the admin queue). */
  outstanding: number[] = [];
  pending: PendingAsyncEvent[] = [];
  /** Event types reported and not yet cleared by reading their log page. */
  maskedTypes = new Set<number>();
  errorLog: ErrorLogEntry[] = [];
  errorCount = 0n;

  constructor(private readonly c: NvmeController) {}

  reset(): void {
    this.outstanding = [];
    this.pending = [];
    this.maskedTypes.clear();
  }

  outstandingCount(): number {
    return this.outstanding.length;
  }

  /** Handler side of Asynchronous Event Request: returns PENDING or a status. */
  request(sq: SubmissionQueue, cid: number): boolean {
    if (this.outstanding.length > AERL) return false;
    this.outstanding.push(cid);
    // Defer delivery so this AER's own completion path is set up first.
    queueMicrotask(() => this.deliver(sq));
    return true;
  }

  /** Queues an event and completes an outstanding AER when possible. */
  post(type: number, info: number, logPage: number = logPageFor(type)): void {
    if (this.pending.some((p) => p.type === type && p.info === info)) return;
    this.pending.push({ type, info, logPage });
    const sq = this.c.sqs[0];
    if (sq !== undefined) this.deliver(sq);
  }

  private deliver(sq: SubmissionQueue): void {
    while (this.outstanding.length > 0) {
      const i = this.pending.findIndex((p) => !this.maskedTypes.has(p.type));
      if (i < 0) return;
      const ev = this.pending.splice(i, 1)[0]!;
      const cid = this.outstanding.shift()!;
      this.maskedTypes.add(ev.type);
      emitEvent(ControllerEvent.asyncEventPosted, this.c.cntlid, { ...ev, cid });
      const dw0 = (ev.type & 0x7) | ((ev.info & 0xff) << 8) | ((ev.logPage & 0xff) << 16);
      this.c.completeLater(sq, cid, 0, dw0);
    }
  }

  /** Get Log Page with RAE = 0 clears the mask of the event types tied to that page. */
  logPageRead(lid: number, rae: boolean): void {
    if (rae) return;
    for (const t of [...this.maskedTypes]) if (logPageFor(t) === lid) this.maskedTypes.delete(t);
    const sq = this.c.sqs[0];
    if (sq !== undefined) this.deliver(sq);
  }

  logError(sqid: number, cid: number, status: number, nsid: number): void {
    this.errorCount++;
    this.errorLog.unshift({ errorCount: this.errorCount, sqid, cid, status, nsid });
    if (this.errorLog.length > ELPE + 1) this.errorLog.length = ELPE + 1;
  }
}

function logPageFor(type: number): number {
  switch (type) {
    case AsyncEventType.ErrorStatus:
      return LogPageId.ErrorInformation;
    case AsyncEventType.SmartHealthStatus:
      return LogPageId.SmartHealthInformation;
    case AsyncEventType.Notice:
      return LogPageId.ChangedNamespaceList;
    default:
      return 0;
  }
}
