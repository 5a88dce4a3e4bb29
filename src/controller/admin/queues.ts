/**
 * Create / Delete I/O Submission and Completion Queue (NVMe Base 2.1 §5.2.3–5.2.6).
 *
 * CDW10: QID bits 15:0, QSIZE bits 31:16 (0's based). Create I/O CQ CDW11: PC bit 0, IEN bit 1,
 * IV bits 31:16. Create I/O SQ CDW11: PC bit 0, QPRIO bits 2:1, CQID bits 31:16.
 * CAP.CQR = 1, so PC = 0 is an Invalid Field. Queue memory must lie wholly in the DMA map.
 */
import { CQE_BYTES, readU64AsNumber, SQE_BYTES } from "../../nvme/sqe.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { CompletionQueue, SubmissionQueue } from "../queues.ts";

function maxQueuesAllowed(c: NvmeController): { sq: number; cq: number } {
  const nq = c.features.numberOfQueues;
  if (nq < 0) return { sq: c.maxIoQueuePairs, cq: c.maxIoQueuePairs };
  return { sq: (nq & 0xffff) + 1, cq: (nq >>> 16) + 1 };
}

export function createIoCompletionQueue(c: NvmeController): number {
  const cdw10 = c.sqe.getUint32(40, true);
  const cdw11 = c.sqe.getUint32(44, true);
  const qid = cdw10 & 0xffff;
  const qsize = (cdw10 >>> 16) + 1;
  const pc = (cdw11 & 1) !== 0;
  const ien = (cdw11 & 2) !== 0;
  const iv = cdw11 >>> 16;
  const prp1 = readU64AsNumber(c.sqe, 24);
  if (!c.ioQueueEntrySizesValid) return Status.InvalidField;
  if (qid === 0 || qid > maxQueuesAllowed(c).cq || c.cqs[qid] !== undefined)
    return Status.InvalidQueueIdentifier;
  if (qsize < 2 || qsize > c.mqes + 1) return Status.InvalidQueueSize;
  if (!pc) return Status.InvalidField;
  if (iv >= c.msixVectors) return Status.InvalidInterruptVector;
  if (prp1 % c.pageBytes !== 0) return Status.PrpOffsetInvalid;
  const win = c.dma.window(prp1, qsize * CQE_BYTES);
  if (win === undefined || !win.region.writable) return Status.DataTransferError;
  c.addCq(new CompletionQueue(qid, prp1, qsize, ien, iv, win.region, win.offset));
  return Status.Success;
}

export function createIoSubmissionQueue(c: NvmeController): number {
  const cdw10 = c.sqe.getUint32(40, true);
  const cdw11 = c.sqe.getUint32(44, true);
  const qid = cdw10 & 0xffff;
  const qsize = (cdw10 >>> 16) + 1;
  const pc = (cdw11 & 1) !== 0;
  const qprio = (cdw11 >>> 1) & 0x3;
  const cqid = cdw11 >>> 16;
  const prp1 = readU64AsNumber(c.sqe, 24);
  if (!c.ioQueueEntrySizesValid) return Status.InvalidField;
  if (qid === 0 || qid > maxQueuesAllowed(c).sq || c.sqs[qid] !== undefined)
    return Status.InvalidQueueIdentifier;
  if (qsize < 2 || qsize > c.mqes + 1) return Status.InvalidQueueSize;
  if (!pc) return Status.InvalidField;
  if (cqid === 0 || c.cqs[cqid] === undefined) return Status.CompletionQueueInvalid;
  if (prp1 % c.pageBytes !== 0) return Status.PrpOffsetInvalid;
  const win = c.dma.window(prp1, qsize * SQE_BYTES);
  if (win === undefined) return Status.DataTransferError;
  c.addSq(new SubmissionQueue(qid, cqid, prp1, qsize, qprio, win.region, win.offset));
  return Status.Success;
}

export function deleteIoSubmissionQueue(c: NvmeController): number {
  const qid = c.sqe.getUint32(40, true) & 0xffff;
  if (qid === 0 || c.sqs[qid] === undefined) return Status.InvalidQueueIdentifier;
  c.deleteSq(qid);
  return Status.Success;
}

export function deleteIoCompletionQueue(c: NvmeController): number {
  const qid = c.sqe.getUint32(40, true) & 0xffff;
  const cq = c.cqs[qid];
  if (qid === 0 || cq === undefined) return Status.InvalidQueueIdentifier;
  if (cq.sqCount > 0) return Status.InvalidQueueDeletion;
  c.deleteCq(qid);
  return Status.Success;
}
