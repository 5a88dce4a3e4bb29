/**
 * Admin command dispatch (NVMe Base 2.1 §5): one handler per command, named as in the spec, one file
 * per command family. Commands that only a primary controller supports (Virtualization Management and
 * the TP4159 live-migration commands) complete with Invalid Command Opcode on a secondary.
 */
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { Status } from "../../nvme/status.ts";
import type { CommandHandler, NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";
import type { SubmissionQueue } from "../queues.ts";
import { abort } from "./abort.ts";
import { asynchronousEventRequest } from "./async-event-request.ts";
import { controllerDataQueue } from "./controller-data-queue.ts";
import { doorbellBufferConfig } from "./doorbell-buffer-config.ts";
import { getFeatures, setFeatures } from "./features.ts";
import { getLogPage } from "./get-log-page.ts";
import { identify } from "./identify.ts";
import { INTEL_PROFILE_HANDLERS } from "./intel-migration.ts";
import { migrationReceive } from "./migration-receive.ts";
import { migrationSend } from "./migration-send.ts";
import {
  createIoCompletionQueue,
  createIoSubmissionQueue,
  deleteIoCompletionQueue,
  deleteIoSubmissionQueue,
} from "./queues.ts";
import { trackReceive } from "./track-receive.ts";
import { trackSend } from "./track-send.ts";
import { virtualizationManagement } from "./virtualization-management.ts";

const common = new Map<number, CommandHandler>([
  [AdminOpcode.DeleteIoSubmissionQueue, deleteIoSubmissionQueue],
  [AdminOpcode.CreateIoSubmissionQueue, createIoSubmissionQueue],
  [AdminOpcode.GetLogPage, getLogPage],
  [AdminOpcode.DeleteIoCompletionQueue, deleteIoCompletionQueue],
  [AdminOpcode.CreateIoCompletionQueue, createIoCompletionQueue],
  [AdminOpcode.Identify, identify],
  [AdminOpcode.Abort, abort],
  [AdminOpcode.SetFeatures, setFeatures],
  [AdminOpcode.GetFeatures, getFeatures],
  [AdminOpcode.AsynchronousEventRequest, asynchronousEventRequest],
  [AdminOpcode.DoorbellBufferConfig, doorbellBufferConfig],
]);

/** Handlers registered for the primary controller only (Virtualization Management, TP4159, Intel profile). */
const primaryOnly = new Map<number, CommandHandler>([
  [AdminOpcode.VirtualizationManagement, virtualizationManagement],
  [AdminOpcode.MigrationSend, migrationSend],
  [AdminOpcode.MigrationReceive, migrationReceive],
  [AdminOpcode.ControllerDataQueue, controllerDataQueue],
  [AdminOpcode.TrackSend, trackSend],
  [AdminOpcode.TrackReceive, trackReceive],
  ...INTEL_PROFILE_HANDLERS,
]);

/** Adds a primary-only admin command handler (used by the live-migration modules). */
export function registerPrimaryAdminCommand(opcode: number, handler: CommandHandler): void {
  primaryOnly.set(opcode, handler);
}

export function dispatchAdminCommand(c: NvmeController, sq: SubmissionQueue): number {
  const opc = c.sqe.getUint8(0);
  if ((c.sqe.getUint8(1) & 0x3) !== 0) return Status.InvalidField; // no fused admin commands
  // Admin commands use PRPs (PSDT 00b) outside NVMe over Fabrics.
  if (c.sqe.getUint8(1) >> 6 !== 0) return Status.InvalidField;
  const h = common.get(opc) ?? (c.primary ? primaryOnly.get(opc) : undefined);
  if (h === undefined) {
    emitEvent(ControllerEvent.invalidOpcode, c.cntlid, { sqid: 0, opcode: opc });
    return Status.InvalidOpcode;
  }
  return h(c, sq);
}

/** Opcodes this controller accepts on its admin queue (for the Commands Supported and Effects log). */
export function supportedAdminOpcodes(c: NvmeController): number[] {
  return [...common.keys(), ...(c.primary ? primaryOnly.keys() : [])].sort((a, b) => a - b);
}
