/**
 * Abort (08h) — NVMe Base 2.1 §5.2.1. CDW10: SQID bits 15:0, CID bits 31:16.
 * CQE DW0 bit 0 = 1 means the command was NOT aborted (already completed, or not found). Outstanding
 * Asynchronous Event Requests are aborted (completed with Command Abort Requested). At most ACL+1
 * Aborts may be outstanding; ours complete at once, so the limit is never reached.
 */
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";

export function abort(c: NvmeController): number {
  const cdw10 = c.sqe.getUint32(40, true);
  const sqid = cdw10 & 0xffff;
  const cid = cdw10 >>> 16;
  const sq = c.sqs[sqid];
  if (sq === undefined) return Status.InvalidQueueIdentifier;
  const ae = c.asyncEvents;
  const i = sqid === 0 ? ae.outstanding.indexOf(cid) : -1;
  if (i >= 0) {
    ae.outstanding.splice(i, 1);
    c.completeLater(sq, cid, Status.AbortRequested);
    c.dw0 = 0;
    emitEvent(ControllerEvent.abort, c.cntlid, { sqid, cid, aborted: true });
    return Status.Success;
  }
  c.dw0 = 1;
  emitEvent(ControllerEvent.abort, c.cntlid, { sqid, cid, aborted: false });
  return Status.Success;
}
