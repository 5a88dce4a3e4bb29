/**
 * The admin commands the guest driver sends, as SQE fields (CID filled in by the driver), built with
 * the spec-layer command codecs (NVMe Base 2.1 §5).
 *
 * Not API: used by `GuestNvmeDriver`.
 */
import {
  encodeCreateIoCompletionQueue,
  encodeCreateIoSubmissionQueue,
  encodeDeleteIoQueue,
} from "../nvme/create-delete-queues.ts";
import { encodeFeaturesCdw10, encodeNumberOfQueues } from "../nvme/features.ts";
import { encodeGetLogPage, getLogPageNumd } from "../nvme/get-log-page.ts";
import { FeatureId } from "../nvme/identifiers.ts";
import { encodeIdentify } from "../nvme/identify-command.ts";
import { AdminOpcode } from "../nvme/opcodes.ts";
import type { SqeFields } from "../nvme/sqe.ts";

export type AdminSqe = Omit<SqeFields, "cid">;

/** Identify (06h) of structure `cns`; `prp1` is the 4 KiB data buffer. */
export function identifyCommand(cns: number, nsid: number, prp1: number, cntid = 0): AdminSqe {
  return {
    opc: AdminOpcode.Identify,
    nsid,
    prp1,
    ...encodeIdentify({ cns, cntid, cnssid: 0, csi: 0, uuidIndex: 0 }),
  };
}

/**
 * Set Features — Number of Queues (FID 07h), NSQR/NCQR 0's based. Completion DW0 carries NSQA 15:0
 * and NCQA 31:16 (0's based).
 */
export function setNumberOfQueuesCommand(nsqr: number, ncqr: number): AdminSqe {
  return {
    opc: AdminOpcode.SetFeatures,
    cdw10: encodeFeaturesCdw10({ fid: FeatureId.NumberOfQueues, sel: 0, sv: false }),
    cdw11: encodeNumberOfQueues({ nsqr, ncqr }),
  };
}

/** Create I/O Completion Queue (05h), physically contiguous, QSIZE 0's based. */
export function createIoCqCommand(
  qid: number,
  qsize: number,
  prp1: number,
  iv: number,
  ien: boolean,
): AdminSqe {
  return {
    opc: AdminOpcode.CreateIoCompletionQueue,
    prp1,
    ...encodeCreateIoCompletionQueue({ qid, qsize, pc: true, ien, iv }),
  };
}

/** Create I/O Submission Queue (01h), physically contiguous, QSIZE 0's based. */
export function createIoSqCommand(
  qid: number,
  qsize: number,
  prp1: number,
  cqid: number,
  qprio = 0,
): AdminSqe {
  return {
    opc: AdminOpcode.CreateIoSubmissionQueue,
    prp1,
    ...encodeCreateIoSubmissionQueue({ qid, qsize, pc: true, qprio, cqid, nvmsetid: 0 }),
  };
}

/** Delete I/O Submission Queue (00h). */
export function deleteIoSqCommand(qid: number): AdminSqe {
  return { opc: AdminOpcode.DeleteIoSubmissionQueue, ...encodeDeleteIoQueue({ qid }) };
}

/** Delete I/O Completion Queue (04h). */
export function deleteIoCqCommand(qid: number): AdminSqe {
  return { opc: AdminOpcode.DeleteIoCompletionQueue, ...encodeDeleteIoQueue({ qid }) };
}

/** Abort (08h): CDW10 SQID 15:0, CID 31:16. Completion DW0 bit 0 = 1: command not aborted. */
export function abortCommand(sqid: number, cid: number): AdminSqe {
  const cdw10 = ((sqid & 0xffff) | ((cid & 0xffff) << 16)) >>> 0;
  return { opc: AdminOpcode.Abort, cdw10 };
}

/** Asynchronous Event Request (0Ch): no fields. */
export function asyncEventRequestCommand(): AdminSqe {
  return { opc: AdminOpcode.AsynchronousEventRequest };
}

/** Get Log Page (02h) of `lengthBytes` (a multiple of 4) from offset 0, RAE = 0 (clears the event). */
export function getLogPageCommand(
  lid: number,
  lengthBytes: number,
  prp1: number,
  nsid = 0xffffffff,
): AdminSqe {
  return {
    opc: AdminOpcode.GetLogPage,
    nsid,
    prp1,
    ...encodeGetLogPage({
      lid,
      lsp: 0,
      rae: false,
      numd: getLogPageNumd(lengthBytes),
      lsi: 0,
      lpo: 0,
      uuidIndex: 0,
      ot: false,
      csi: 0,
    }),
  };
}

/** Doorbell Buffer Config (7Ch): PRP1 = Shadow Doorbell buffer, PRP2 = EventIdx buffer (one page each). */
export function doorbellBufferConfigCommand(shadowGpa: number, eventIdxGpa: number): AdminSqe {
  return { opc: AdminOpcode.DoorbellBufferConfig, prp1: shadowGpa, prp2: eventIdxGpa };
}
