/**
 * Create / Delete I/O Submission and Completion Queue command fields (admin 01h, 05h, 00h, 04h),
 * NVMe Base 2.1 §5.2.1–5.2.4:
 *
 *   Create I/O CQ: CDW10 QID 15:0, QSIZE 31:16 (0's based); CDW11 PC 0, IEN 1, IV 31:16
 *   Create I/O SQ: CDW10 QID 15:0, QSIZE 31:16 (0's based); CDW11 PC 0, QPRIO 2:1, CQID 31:16;
 *                  CDW12 NVMSETID 15:0
 *   Delete I/O SQ / CQ: CDW10 QID 15:0
 */
import { bit, bits, type CommandDwords, dwords, flag, pack, place } from "./codec.ts";

/** Queue Priority (weighted round robin arbitration). */
export const Qprio = { Urgent: 0, High: 1, Medium: 2, Low: 3 } as const;

export interface CreateIoCompletionQueueFields {
  qid: number;
  /** Queue Size, entries, 0's based. */
  qsize: number;
  /** Physically Contiguous. */
  pc: boolean;
  /** Interrupts Enabled. */
  ien: boolean;
  /** Interrupt Vector. */
  iv: number;
}

export interface CreateIoSubmissionQueueFields {
  qid: number;
  /** Queue Size, entries, 0's based. */
  qsize: number;
  pc: boolean;
  /** Queue Priority (Qprio). */
  qprio: number;
  /** Completion Queue Identifier. */
  cqid: number;
  /** NVM Set Identifier. */
  nvmsetid: number;
}

export interface DeleteIoQueueFields {
  qid: number;
}

export function encodeCreateIoCompletionQueue(f: CreateIoCompletionQueueFields): CommandDwords {
  return dwords({
    cdw10: pack(place(f.qid, 0, 16), place(f.qsize, 16, 16)),
    cdw11: pack(flag(f.pc, 0), flag(f.ien, 1), place(f.iv, 16, 16)),
  });
}

export function decodeCreateIoCompletionQueue(c: Partial<CommandDwords>): CreateIoCompletionQueueFields {
  const d = dwords(c);
  return {
    qid: bits(d.cdw10, 0, 16),
    qsize: bits(d.cdw10, 16, 16),
    pc: bit(d.cdw11, 0),
    ien: bit(d.cdw11, 1),
    iv: bits(d.cdw11, 16, 16),
  };
}

export function encodeCreateIoSubmissionQueue(f: CreateIoSubmissionQueueFields): CommandDwords {
  return dwords({
    cdw10: pack(place(f.qid, 0, 16), place(f.qsize, 16, 16)),
    cdw11: pack(flag(f.pc, 0), place(f.qprio, 1, 2), place(f.cqid, 16, 16)),
    cdw12: place(f.nvmsetid, 0, 16),
  });
}

export function decodeCreateIoSubmissionQueue(c: Partial<CommandDwords>): CreateIoSubmissionQueueFields {
  const d = dwords(c);
  return {
    qid: bits(d.cdw10, 0, 16),
    qsize: bits(d.cdw10, 16, 16),
    pc: bit(d.cdw11, 0),
    qprio: bits(d.cdw11, 1, 2),
    cqid: bits(d.cdw11, 16, 16),
    nvmsetid: bits(d.cdw12, 0, 16),
  };
}

export function encodeDeleteIoQueue(f: DeleteIoQueueFields): CommandDwords {
  return dwords({ cdw10: place(f.qid, 0, 16) });
}

export function decodeDeleteIoQueue(c: Partial<CommandDwords>): DeleteIoQueueFields {
  return { qid: bits(dwords(c).cdw10, 0, 16) };
}
