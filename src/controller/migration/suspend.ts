/**
 * Suspend and Resume of a controlled controller (TP4159 Migration Send SEL 0 / 1; Intel 0xC8 / 0xCC).
 *
 * Suspend = stop fetching, let every command already fetched finish (its completion posted and
 * dirty-logged), then report suspended. Unfetched SQEs stay in guest memory and move with the SQ
 * head / tail. Outstanding Asynchronous Event Requests stay outstanding (they move with the state).
 * Resume = fetch again from the current heads.
 */
import type { NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";

/** Stops fetching now; resolves when every fetched command has completed. */
export function suspendController(t: NvmeController): Promise<void> {
  t.suspended = true;
  emitEvent(ControllerEvent.suspended, t.cntlid);
  return t.whenIdle();
}

export function resumeController(t: NvmeController): void {
  t.suspended = false;
  t.suspendNotified = false;
  emitEvent(ControllerEvent.resumed, t.cntlid);
  t.poll();
  t.kick();
}
