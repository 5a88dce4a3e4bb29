/**
 * Write Zeroes (08h) — NVM Command Set Specification 1.1 §3.2.8. No data transfer, so MDTS does not
 * apply. DEAC (CDW12 bit 25) asks to deallocate the range as well.
 */
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import type { Namespace } from "../namespace.ts";
import type { SubmissionQueue } from "../queues.ts";
import { decodeLbaRange } from "./lba-range.ts";
import { completeAfterFlush } from "./read-write.ts";

const DEAC = 1 << 25;
const FUA = 1 << 30;

export function writeZeroes(c: NvmeController, sq: SubmissionQueue, ns: Namespace): number {
  const r = decodeLbaRange(c, ns);
  if (typeof r === "number") return r;
  const cdw12 = c.sqe.getUint32(48, true);
  const off = r.slba * ns.lbaBytes;
  const len = r.nlb * ns.lbaBytes;
  if ((cdw12 & DEAC) !== 0) ns.store.deallocate(off, len);
  else ns.store.writeZeroes(off, len);
  c.lbaWritten(ns.nsid, r.slba, r.nlb, (cdw12 & DEAC) !== 0);
  if ((cdw12 & FUA) !== 0 || (c.features.volatileWriteCache & 1) === 0) return completeAfterFlush(c, sq, ns);
  return Status.Success;
}
