/**
 * The ONE place where a device failure becomes a control-plane error: an NVMe status (from any admin
 * or I/O command the agent issued on the controlling function) → `ControlError` whose code follows the
 * table below and whose message names the command, the controlled CNTLID and the spec name of the
 * status (e.g. "Migration Send Resume (CNTLID 1): ControllerNotSuspended (status 0x403a)").
 *
 * | NVMe status (SCT/SC)                                         | ControlError code     |
 * |--------------------------------------------------------------|-----------------------|
 * | Invalid Field in Command, LBA Out of Range,                  | `invalid-argument`    |
 * |   Invalid Number of Controller Resources, Invalid Resource Id|                       |
 * | Invalid Controller Identifier, Invalid Namespace or Format,  | `not-found`           |
 * |   Namespace Not Attached                                     |                       |
 * | Controller Suspended, Controller Not Suspended, Command      | `failed-precondition` |
 * |   Sequence Error, Invalid Controller Data Queue, Invalid     |                       |
 * |   Secondary Controller State, Operation Denied               |                       |
 * | Not Enough Resources, Controller Data Queue Full, Capacity   | `resource-exhausted`  |
 * |   Exceeded                                                   |                       |
 * | Command Abort Requested, Aborted due to SQ Deletion          | `aborted`             |
 * | Namespace Not Ready                                          | `unavailable`         |
 * | Invalid Command Opcode                                       | `unimplemented`       |
 * | anything else (Internal Error, Data Transfer Error, media …) | `internal`            |
 */
import { ControlError, type ControlErrorCode } from "../../control/errors.ts";
import {
  CommandSpecificStatus,
  GenericStatus,
  StatusCodeType,
  statusCode,
  statusCodeType,
  statusName,
} from "../../nvme/status.ts";

const generic: ReadonlyMap<number, ControlErrorCode> = new Map<number, ControlErrorCode>([
  [GenericStatus.InvalidCommandOpcode, "unimplemented"],
  [GenericStatus.InvalidFieldInCommand, "invalid-argument"],
  [GenericStatus.LbaOutOfRange, "invalid-argument"],
  [GenericStatus.InvalidNamespaceOrFormat, "not-found"],
  [GenericStatus.CommandSequenceError, "failed-precondition"],
  [GenericStatus.OperationDenied, "failed-precondition"],
  [GenericStatus.ControllerSuspended, "failed-precondition"],
  [GenericStatus.ControllerNotSuspended, "failed-precondition"],
  [GenericStatus.InvalidControllerDataQueue, "failed-precondition"],
  [GenericStatus.NotEnoughResources, "resource-exhausted"],
  [GenericStatus.ControllerDataQueueFull, "resource-exhausted"],
  [GenericStatus.CapacityExceeded, "resource-exhausted"],
  [GenericStatus.CommandAbortRequested, "aborted"],
  [GenericStatus.CommandAbortedDueToSqDeletion, "aborted"],
  [GenericStatus.NamespaceNotReady, "unavailable"],
]);

const commandSpecific: ReadonlyMap<number, ControlErrorCode> = new Map<number, ControlErrorCode>([
  [CommandSpecificStatus.InvalidControllerIdentifier, "not-found"],
  [CommandSpecificStatus.NamespaceNotAttached, "not-found"],
  [CommandSpecificStatus.InvalidSecondaryControllerState, "failed-precondition"],
  [CommandSpecificStatus.InvalidNumberOfControllerResources, "invalid-argument"],
  [CommandSpecificStatus.InvalidResourceIdentifier, "invalid-argument"],
]);

/** ControlError code for a non-zero 15-bit NVMe Status Field. */
export function controlCodeOfStatus(status: number): ControlErrorCode {
  const sct = statusCodeType(status);
  const sc = statusCode(status);
  const table =
    sct === StatusCodeType.Generic
      ? generic
      : sct === StatusCodeType.CommandSpecific
        ? commandSpecific
        : undefined;
  return table?.get(sc) ?? "internal";
}

/** The error for command `what` having completed with non-zero `status`. */
export function deviceError(what: string, status: number, cause?: unknown): ControlError {
  const hex = `0x${status.toString(16).padStart(4, "0")}`;
  return new ControlError(controlCodeOfStatus(status), `${what}: ${statusName(status)} (status ${hex})`, {
    cause,
  });
}

/** Throws `deviceError(what, status)` unless `status` is 0. */
export function checkStatus(what: string, status: number): void {
  if (status !== 0) throw deviceError(what, status);
}

/**
 * Normalises what a device-side helper threw: a `ControlError` passes through; an error carrying a
 * non-zero NVMe `status` (ControllerOpError, UdmqError, HostNodeError) maps by the table; anything
 * else is a bug → `internal`.
 */
export function asControlError(e: unknown, what: string): ControlError {
  if (e instanceof ControlError) return e;
  if (e instanceof Error && "status" in e && typeof e.status === "number" && e.status !== 0) {
    const hex = `0x${e.status.toString(16).padStart(4, "0")}`;
    return new ControlError(controlCodeOfStatus(e.status), `${what}: ${e.message} (status ${hex})`, {
      cause: e,
    });
  }
  return ControlError.from(e);
}
