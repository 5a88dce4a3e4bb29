/**
 * Asynchronous Event Request (0Ch) — NVMe Base 2.1 §5.2.2. Held outstanding until an event occurs;
 * more than AERL+1 outstanding → Asynchronous Event Request Limit Exceeded.
 */
import { Status } from "../../nvme/status.ts";
import { type NvmeController, PENDING } from "../controller.ts";
import type { SubmissionQueue } from "../queues.ts";

export function asynchronousEventRequest(c: NvmeController, sq: SubmissionQueue): number {
  const cid = c.sqe.getUint16(2, true);
  return c.asyncEvents.request(sq, cid) ? PENDING : Status.AsyncEventRequestLimitExceeded;
}
