/**
 * The controller's event catalogue: every guest mistake and every notable success is a named event.
 *
 * Events are published on the diagnostics channel `nvmig:controller` as `{ event, cntlid, ...fields }`,
 * so tests and tools can subscribe without touching internals; publishing costs nothing when nobody
 * listens. Names are stable strings: `<area>.<what>`; errors end in a spec-flavoured reason.
 */
import { channel } from "node:diagnostics_channel";

export const ControllerEvent = {
  // registers and doorbells
  ccEnabled: "cc.enabled",
  ccDisabled: "cc.disabled",
  ccEnableRejected: "cc.enable-rejected",
  shutdown: "cc.shutdown",
  doorbellInvalidRegister: "doorbell.invalid-register",
  doorbellInvalidValue: "doorbell.invalid-value",
  mmioIgnored: "mmio.ignored",
  // command processing
  commandFailed: "command.failed",
  invalidOpcode: "command.invalid-opcode",
  dataTransferError: "command.data-transfer-error",
  cqFull: "cq.full",
  // admin
  queueCreated: "queue.created",
  queueDeleted: "queue.deleted",
  virtMgmt: "virtualization-management",
  asyncEventPosted: "async-event.posted",
  abort: "abort",
  // live migration
  suspended: "migration.suspended",
  resumed: "migration.resumed",
  stateSaved: "migration.state-saved",
  stateRestored: "migration.state-restored",
  stateRejected: "migration.state-rejected",
  udmqEntry: "migration.udmq-entry",
  controllerReset: "controller.reset",
} as const;
export type ControllerEventName = (typeof ControllerEvent)[keyof typeof ControllerEvent];

export const controllerChannel = channel("nvmig:controller");

export function emitEvent(
  event: ControllerEventName,
  cntlid: number,
  fields?: Record<string, unknown>,
): void {
  if (controllerChannel.hasSubscribers) controllerChannel.publish({ event, cntlid, ...fields });
}
