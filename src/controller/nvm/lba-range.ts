/**
 * Decoding and checking of the Starting LBA / Number of Logical Blocks fields shared by Read, Write,
 * Compare and Write Zeroes (CDW10–CDW11 SLBA, CDW12 bits 15:0 NLB, 0's based).
 */
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import type { Namespace } from "../namespace.ts";

export interface LbaRange {
  slba: number;
  /** Number of logical blocks, 1-based (the field is 0's based). */
  nlb: number;
}

/** Reused result object: valid until the next call. */
const range: LbaRange = { slba: 0, nlb: 0 };

/** Decodes SLBA / NLB of the current SQE and checks them against the namespace: a range or a status. */
export function decodeLbaRange(c: NvmeController, ns: Namespace): LbaRange | number {
  const lo = c.sqe.getUint32(40, true);
  const hi = c.sqe.getUint32(44, true);
  const nlb = (c.sqe.getUint32(48, true) & 0xffff) + 1;
  if (hi >= 0x200000) return Status.LbaOutOfRange;
  const slba = hi * 0x1_0000_0000 + lo;
  if (slba + nlb > ns.lbaCount) return Status.LbaOutOfRange;
  range.slba = slba;
  range.nlb = nlb;
  return range;
}
