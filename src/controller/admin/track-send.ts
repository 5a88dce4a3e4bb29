/**
 * Track Send (3Dh) — TP4159. SEL 0 Log User Data Changes: LACT (MOS[3:0]) 1 starts / 0 stops logging
 * into the UDMQ named by CDW11 CDQID. SEL 1 Track Memory Changes (nvmig layout, see
 * `src/nvme/track-commands.ts`): TACT 1 starts tracking the DMA writes of CNTLID over the given
 * ranges at granularity 2^RMRTG; TACT 0 stops.
 */
import { Esa } from "../../nvme/controller-data-queue.ts";
import { Status } from "../../nvme/status.ts";
import {
  decodeTrackMemoryRanges,
  decodeTrackSend,
  TRACK_MEMORY_RANGE_BYTES,
  TRACK_MIN_GRANULARITY_LOG2,
  TrackSendSel,
} from "../../nvme/track-commands.ts";
import type { NvmeController } from "../controller.ts";
import { MemoryChangeTracker, setTracker, trackerOf } from "../migration/memory-tracking.ts";
import { targetByCntlid } from "../migration/targets.ts";
import { udmqsOf } from "../migration/user-data-queue.ts";

/** Most Track Memory Range descriptors per controller (CMMRTD). */
export const MAX_TRACK_RANGES = 16;
/** Largest granularity accepted, log2 bytes (MAXMRTG). */
export const MAX_TRACK_GRANULARITY_LOG2 = 21;

export function trackSend(c: NvmeController): number {
  const d = decodeTrackSend({
    cdw10: c.sqe.getUint32(40, true),
    cdw11: c.sqe.getUint32(44, true),
    cdw12: c.sqe.getUint32(48, true),
    cdw13: c.sqe.getUint32(52, true),
  });
  if (!d.ok) return Status.InvalidField;
  const f = d.value;
  if (f.sel === TrackSendSel.LogUserDataChanges) {
    const q = udmqsOf(c).get(f.cdqid);
    if (q === undefined) return Status.InvalidControllerDataQueue;
    if (f.lact === 1) {
      if (q.target.suspended) return Status.ControllerSuspended;
      q.startLogging();
    } else if (f.lact === 0) q.stopLogging(Esa.LastLoggingStopped);
    else return Status.InvalidField;
    return Status.Success;
  }
  const t = targetByCntlid(c, f.cntlid);
  if (t === undefined) return Status.InvalidControllerIdentifier;
  if (f.tact === 0) {
    setTracker(t, undefined);
    return Status.Success;
  }
  if (f.tact !== 1) return Status.InvalidField;
  if (f.rmrtg < TRACK_MIN_GRANULARITY_LOG2 || f.rmrtg > MAX_TRACK_GRANULARITY_LOG2)
    return Status.InvalidField;
  if (f.nranges === 0 || f.nranges > MAX_TRACK_RANGES) return Status.InvalidField;
  if (trackerOf(t) !== undefined) return Status.CommandSequenceError;
  const data = c.transferFromHost(f.nranges * TRACK_MEMORY_RANGE_BYTES);
  if (typeof data === "number") return data;
  const ranges = decodeTrackMemoryRanges(data, f.nranges);
  const g = 2 ** f.rmrtg;
  for (const r of ranges) {
    if (r.length <= 0 || r.iova % g !== 0 || r.length % g !== 0) return Status.InvalidField;
    if (!Number.isSafeInteger(r.iova + r.length)) return Status.InvalidField;
  }
  for (let i = 0; i < ranges.length; i++)
    for (let j = i + 1; j < ranges.length; j++) {
      const a = ranges[i]!;
      const b = ranges[j]!;
      if (a.iova < b.iova + b.length && b.iova < a.iova + a.length) return Status.InvalidField;
    }
  setTracker(t, new MemoryChangeTracker(t, ranges, f.rmrtg));
  return Status.Success;
}
