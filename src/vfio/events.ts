/**
 * The portal's event catalogue: every rejected request and every state change is a named event.
 *
 * Published on the diagnostics channel `nvmig:vfio` as `{ event, fn, ...fields }` (`fn` = the portal's
 * label), so tests and tools can subscribe without touching internals; free when nobody listens.
 */
import { channel } from "node:diagnostics_channel";

export const VfioEvent = {
  /** A DEVICE_FEATURE call failed envelope or payload validation. Fields: flags, argsz, errno, reason. */
  featureRejected: "feature.rejected",
  /** One primitive arc done. Fields: from, to. */
  arc: "state.arc",
  /** A SET failed. Fields: target, errno, reachedState. */
  setFailed: "state.set-failed",
  /** The device entered ERROR after a failing arc. Fields: from, to, errno. */
  errorEntered: "state.error-entered",
  /** A reset was applied (state now RUNNING, sessions dead). Fields: from. */
  resetApplied: "reset.applied",
  /** A data session was opened / ended. Fields: session, kind. */
  sessionOpened: "session.opened",
  sessionClosed: "session.closed",
  /** A read/write/ioctl on a data session failed. Fields: session, op, errno. */
  sessionIoFailed: "session.io-failed",
  /** A DMA logging request was refused. Fields: op, errno. */
  dmaLoggingRejected: "dma-logging.rejected",
  dmaLoggingStarted: "dma-logging.started",
  dmaLoggingStopped: "dma-logging.stopped",
} as const;
export type VfioEventName = (typeof VfioEvent)[keyof typeof VfioEvent];

export const vfioChannel = channel("nvmig:vfio");

export function emitVfioEvent(event: VfioEventName, fn: string, fields?: Record<string, unknown>): void {
  if (vfioChannel.hasSubscribers) vfioChannel.publish({ event, fn, ...fields });
}
