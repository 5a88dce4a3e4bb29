/**
 * Track Receive (3Eh) — nvmig layout of TP4159 "Get Memory Changes" (SEL 0): returns NUMD+1 dwords of
 * the dirty-granule bitmap of range RIDX of CNTLID's tracking, from dword OFFSET, and clears what it
 * returns. Not tracking → Command Sequence Error; unknown range or offset → Invalid Field.
 */

import { Status } from "../../nvme/status.ts";
import { decodeTrackReceive } from "../../nvme/track-commands.ts";
import type { NvmeController } from "../controller.ts";
import { trackerOf } from "../migration/memory-tracking.ts";
import { targetByCntlid } from "../migration/targets.ts";

export function trackReceive(c: NvmeController): number {
  const d = decodeTrackReceive({
    cdw10: c.sqe.getUint32(40, true),
    cdw11: c.sqe.getUint32(44, true),
    cdw12: c.sqe.getUint32(48, true),
    cdw13: c.sqe.getUint32(52, true),
    cdw15: c.sqe.getUint32(60, true),
  });
  if (!d.ok) return Status.InvalidField;
  const f = d.value;
  const t = targetByCntlid(c, f.cntlid);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  const tr = trackerOf(t);
  if (tr === undefined) return Status.CommandSequenceError;
  const dwordsWanted = f.numd + 1;
  if (dwordsWanted * 4 > c.mdtsBytes) return Status.InvalidField;
  // Validate before clearing: the transfer must be able to succeed.
  const st = c.walkDptr(dwordsWanted * 4, true);
  if (st !== Status.Success) return st;
  const out = tr.readAndClear(f.ridx, f.offset, dwordsWanted);
  if (out === undefined) return Status.InvalidField;
  return c.transferToHost(out);
}
