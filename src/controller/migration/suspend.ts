/**
 * Suspend and Resume of a controlled controller (TP4159 Migration Send SEL 0 / 1; Intel 0xC8 / 0xCC).
 *
 * Suspend = stop fetching, let every command already fetched finish (its completion posted and
 * dirty-logged, its changed blocks reported), then end user-data logging (ESA 3) and report suspended. Unfetched SQEs stay in guest memory and move with the SQ
 * head / tail. Outstanding Asynchronous Event Requests stay outstanding (they move with the state).
 * Resume = fetch again from the current heads.
 */
import { Status } from "../../nvme/status.ts";
import { type NvmeController, PENDING } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";
import type { SubmissionQueue } from "../queues.ts";

/** Stops fetching now; resolves when every fetched command has completed. */
export function suspendController(t: NvmeController): Promise<void> {
  t.suspended = true;
  emitEvent(ControllerEvent.suspended, t.cntlid);
  return t.whenIdle();
}

/**
 * The Suspend admin command on controller `c` (the controlling one) for target `t`: completes at once
 * when nothing fetched is outstanding on `t` (the usual case: commands complete within the pass that
 * fetched them), otherwise returns `PENDING` and completes when `t` is idle.
 *
 * `onIdle` runs once `t` is idle — after the last fetched command completed (its data in the store and
 * its changed blocks reported through `lbaWritten`) and before the Suspend completes. Migration Send
 * posts the UDMQ's ESA 3 there, so no change by a command fetched before the suspend falls after it.
 */
export function suspendCommand(
  c: NvmeController,
  sq: SubmissionQueue,
  t: NvmeController,
  onIdle?: () => void,
): number {
  const idle = suspendController(t);
  if (t.outstandingCommands() <= 0) {
    onIdle?.();
    return Status.Success;
  }
  const cid = c.sqe.getUint16(2, true);
  idle
    .then(() => onIdle?.())
    .then(
      () => c.completeLater(sq, cid, Status.Success),
      () => c.completeLater(sq, cid, Status.InternalError),
    );
  return PENDING;
}

export function resumeController(t: NvmeController): void {
  t.suspended = false;
  t.suspendNotified = false;
  emitEvent(ControllerEvent.resumed, t.cntlid);
  t.poll();
  t.kick();
}
