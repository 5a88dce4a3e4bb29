/**
 * The Intel live-migration vendor profile (Dec 2022 RFC), on the same internals as TP4159:
 * 0xC4 Query Data Size (CQE DW0 = state bytes), 0xC8 Suspend, 0xCC Resume, 0xD2 Save Data (controller
 * to host, PRP1/PRP2, size from the query), 0xD5 Load Data (host to controller, CDW11 = bytes).
 * The target is the VF index (= VFN) in CDW10[15:0]. Advertised by Identify Controller byte 3072 = 1.
 * The state blob is the same TP4159 Controller State this controller produces for Migration Receive.
 */
import { decodeIntelMigration, INTEL_LM_MAX_STATE_BYTES } from "../../nvme/intel-migration.ts";
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { captureControllerState, restoreControllerState } from "../migration/controller-state.ts";
import { resumeController, suspendCommand } from "../migration/suspend.ts";
import { targetByVfIndex, transfersFor } from "../migration/targets.ts";
import type { SubmissionQueue } from "../queues.ts";

function decode(c: NvmeController) {
  return decodeIntelMigration({ cdw10: c.sqe.getUint32(40, true), cdw11: c.sqe.getUint32(44, true) });
}

export function intelQueryDataSize(c: NvmeController): number {
  const t = targetByVfIndex(c, decode(c).vfIndex);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  const x = transfersFor(c, t.cntlid);
  x.saved = captureControllerState(t);
  c.dw0 = x.saved.byteLength;
  return Status.Success;
}

export function intelSuspend(c: NvmeController, sq: SubmissionQueue): number {
  const t = targetByVfIndex(c, decode(c).vfIndex);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (t.suspended) return Status.ControllerSuspended;
  return suspendCommand(c, sq, t);
}

export function intelResume(c: NvmeController): number {
  const t = targetByVfIndex(c, decode(c).vfIndex);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (!t.suspended) return Status.ControllerNotSuspended;
  transfersFor(c, t.cntlid).saved = undefined;
  resumeController(t);
  return Status.Success;
}

export function intelSaveData(c: NvmeController): number {
  const t = targetByVfIndex(c, decode(c).vfIndex);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (!t.suspended) return Status.ControllerNotSuspended;
  const x = transfersFor(c, t.cntlid);
  // Save returns the state the preceding query sized; capture now if there was none.
  x.saved ??= captureControllerState(t);
  return c.transferToHost(x.saved);
}

export function intelLoadData(c: NvmeController): number {
  const f = decode(c);
  const t = targetByVfIndex(c, f.vfIndex);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (!t.suspended) return Status.ControllerNotSuspended;
  if (f.sizeBytes === 0 || f.sizeBytes % 4 !== 0 || f.sizeBytes > INTEL_LM_MAX_STATE_BYTES)
    return Status.InvalidField;
  const blob = c.transferFromHost(f.sizeBytes);
  if (typeof blob === "number") return blob;
  return restoreControllerState(t, blob) === undefined ? Status.Success : Status.InvalidField;
}

export const INTEL_PROFILE_HANDLERS: [number, (c: NvmeController, sq: SubmissionQueue) => number][] = [
  [AdminOpcode.IntelQueryDataSize, intelQueryDataSize],
  [AdminOpcode.IntelSuspend, intelSuspend],
  [AdminOpcode.IntelResume, intelResume],
  [AdminOpcode.IntelSaveData, intelSaveData],
  [AdminOpcode.IntelLoadData, intelLoadData],
];
