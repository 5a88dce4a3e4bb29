/**
 * How a controlling (primary) controller finds the controlled controller a live-migration command names,
 * and the per-target transfer buffers of Get / Set Controller State.
 *
 * A target is named by CNTLID (TP4159) or by VF index = VFN (Intel profile); it must be one of this
 * primary's secondary controllers and its VF must exist. Naming the primary itself, an unknown CNTLID,
 * or a secondary whose VF is not enabled → Invalid Controller Identifier.
 */
import type { NvmeController } from "../controller.ts";

export interface TargetTransfers {
  /** State captured at Get Controller State offset 0, served for later offsets until Resume. */
  saved: Uint8Array | undefined;
  /** Set Controller State chunks received so far (SEQIND first … last). */
  incoming: Uint8Array[];
  incomingBytes: number;
}

const transfers = new WeakMap<NvmeController, Map<number, TargetTransfers>>();

export function transfersFor(primary: NvmeController, cntlid: number): TargetTransfers {
  let m = transfers.get(primary);
  if (m === undefined) {
    m = new Map();
    transfers.set(primary, m);
  }
  let t = m.get(cntlid);
  if (t === undefined) {
    t = { saved: undefined, incoming: [], incomingBytes: 0 };
    m.set(cntlid, t);
  }
  return t;
}

export function targetByCntlid(primary: NvmeController, cntlid: number): NvmeController | undefined {
  if (cntlid === primary.cntlid) return undefined;
  const rec = primary.subsystem.secondary(cntlid);
  if (rec === undefined) return undefined;
  return primary.subsystem.controllers.get(cntlid);
}

export function targetByVfIndex(primary: NvmeController, vfIndex: number): NvmeController | undefined {
  const rec = primary.subsystem.secondaries.find((s) => s.vfn === vfIndex);
  if (rec === undefined) return undefined;
  return targetByCntlid(primary, rec.scid);
}
