/**
 * Doorbell Buffer Config (7Ch) — NVMe Base 2.1 §5.2.7 (shadow doorbells).
 * PRP1: Shadow Doorbell buffer, PRP2: EventIdx buffer, each one memory page, page aligned.
 * The host writes new SQ tails / CQ heads of I/O queues into the shadow buffer (same layout as the
 * doorbell registers) and rings the MMIO doorbell only when the controller's EventIdx says so.
 */
import { readU64AsNumber } from "../../nvme/sqe.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";

export function doorbellBufferConfig(c: NvmeController): number {
  const shadow = readU64AsNumber(c.sqe, 24);
  const eventIdx = readU64AsNumber(c.sqe, 32);
  const page = c.pageBytes;
  if (shadow % page !== 0 || eventIdx % page !== 0) return Status.InvalidField;
  if (!c.dma.contains(shadow, page) || !c.dma.contains(eventIdx, page)) return Status.InvalidField;
  c.dbbuf = { shadowIova: shadow, eventIdxIova: eventIdx };
  // Seed both buffers with the current values, so queues created before this command keep working.
  const word = new Uint8Array(4);
  const wv = new DataView(word.buffer);
  for (let qid = 1; qid < Math.max(c.sqs.length, c.cqs.length); qid++) {
    const sq = c.sqs[qid];
    const cq = c.cqs[qid];
    if (sq !== undefined) {
      wv.setUint32(0, sq.tail, true);
      c.dma.write(shadow + qid * 8, word);
      c.dma.write(eventIdx + qid * 8, word);
    }
    if (cq !== undefined) {
      wv.setUint32(0, cq.head, true);
      c.dma.write(shadow + qid * 8 + 4, word);
      c.dma.write(eventIdx + qid * 8 + 4, word);
    }
  }
  return Status.Success;
}
