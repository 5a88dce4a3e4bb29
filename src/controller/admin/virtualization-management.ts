/**
 * Virtualization Management (1Ch) — NVMe Base 2.1 §5.2.28, primary controller only.
 * CDW10: ACT bits 3:0, RT bits 10:8 (0 VQ, 1 VI), CNTLID bits 31:16; CDW11: NR bits 15:0.
 * CQE DW0: Number of Controller Resources Modified (NRM).
 *
 * Rules: resources are assigned to a secondary only while it is Offline (else Invalid Secondary
 * Controller State); Online needs NVQ ≥ 2 (admin + one I/O queue) and NVI ≥ 1 and its VF enabled in
 * the SR-IOV capability; assignments are bounded by VQFRSM / VIFRSM and the flexible pool (else Invalid
 * Number of Controller Resources); a CNTLID that is not one of ours → Invalid Controller Identifier.
 * Offline keeps the assigned resources (they may then be changed). Online and Offline reset the
 * secondary controller.
 */
import { VirtMgmtAction, VirtMgmtResourceType } from "../../nvme/identifiers.ts";
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import { ControllerEvent, emitEvent } from "../events.ts";

export function virtualizationManagement(c: NvmeController): number {
  const cdw10 = c.sqe.getUint32(40, true);
  const act = cdw10 & 0xf;
  const rt = (cdw10 >>> 8) & 0x7;
  const cntlid = cdw10 >>> 16;
  const nr = c.sqe.getUint32(44, true) & 0xffff;
  const st = apply(c, act, rt, cntlid, nr);
  emitEvent(ControllerEvent.virtMgmt, c.cntlid, { act, rt, target: cntlid, nr, status: st });
  return st;
}

function apply(c: NvmeController, act: number, rt: number, cntlid: number, nr: number): number {
  const sub = c.subsystem;
  const v = sub.virt;
  const needsRt =
    act === VirtMgmtAction.PrimaryControllerFlexibleAllocation ||
    act === VirtMgmtAction.SecondaryControllerAssign;
  if (needsRt && rt !== VirtMgmtResourceType.VqResources && rt !== VirtMgmtResourceType.ViResources)
    return Status.InvalidResourceIdentifier;
  const isVq = rt === VirtMgmtResourceType.VqResources;
  switch (act) {
    case VirtMgmtAction.PrimaryControllerFlexibleAllocation: {
      if (cntlid !== c.cntlid) return Status.InvalidControllerIdentifier;
      const assigned = sub.flexibleAssigned();
      const usedBySecondaries = isVq
        ? assigned.vq - sub.primaryFlexibleVq
        : assigned.vi - sub.primaryFlexibleVi;
      const pool = isVq ? v.vqFlexible : v.viFlexible;
      if (nr + usedBySecondaries > pool) return Status.InvalidNumberOfControllerResources;
      if (isVq) sub.primaryFlexibleVq = nr;
      else sub.primaryFlexibleVi = nr;
      c.dw0 = nr;
      return Status.Success;
    }
    case VirtMgmtAction.SecondaryControllerOffline: {
      const s = sub.secondary(cntlid);
      if (s === undefined) return Status.InvalidControllerIdentifier;
      s.online = false;
      sub.controllers.get(cntlid)?.setOnline(false, s.nvq, s.nvi);
      return Status.Success;
    }
    case VirtMgmtAction.SecondaryControllerAssign: {
      const s = sub.secondary(cntlid);
      if (s === undefined) return Status.InvalidControllerIdentifier;
      if (s.online) return Status.InvalidSecondaryControllerState;
      const max = isVq ? v.vqMaxPerSecondary : v.viMaxPerSecondary;
      const assigned = sub.flexibleAssigned();
      const others = isVq ? assigned.vq - s.nvq : assigned.vi - s.nvi;
      const pool = isVq ? v.vqFlexible : v.viFlexible;
      if (nr > max || nr + others > pool) return Status.InvalidNumberOfControllerResources;
      if (isVq) s.nvq = nr;
      else s.nvi = nr;
      c.dw0 = nr;
      return Status.Success;
    }
    case VirtMgmtAction.SecondaryControllerOnline: {
      const s = sub.secondary(cntlid);
      if (s === undefined) return Status.InvalidControllerIdentifier;
      if (s.nvq < 2 || s.nvi < 1) return Status.InvalidSecondaryControllerState;
      const ctrl = sub.controllers.get(cntlid);
      if (s.vfn > sub.vfsEnabled || ctrl === undefined) return Status.InvalidSecondaryControllerState;
      s.online = true;
      ctrl.setOnline(true, s.nvq, s.nvi);
      return Status.Success;
    }
    default:
      return Status.InvalidField;
  }
}
