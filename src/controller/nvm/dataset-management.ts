/**
 * Dataset Management (09h) — NVM Command Set Specification 1.1 §3.2.3. Only the Attribute –
 * Deallocate (AD, CDW11 bit 2) has an effect; IDR / IDW hints are accepted and ignored.
 * The data buffer holds NR+1 (CDW10 bits 7:0, 0's based) 16-byte ranges:
 * {context attributes u32 @0, length in logical blocks u32 @4, SLBA u64 @8}.
 */
import { Status } from "../../nvme/status.ts";
import type { NvmeController } from "../controller.ts";
import type { Namespace } from "../namespace.ts";

const AD = 1 << 2;
export const DSM_RANGE_BYTES = 16;

export function datasetManagement(c: NvmeController, ns: Namespace): number {
  const nr = (c.sqe.getUint32(40, true) & 0xff) + 1;
  const ad = (c.sqe.getUint32(44, true) & AD) !== 0;
  const data = c.transferFromHost(nr * DSM_RANGE_BYTES);
  if (typeof data === "number") return data;
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  // Validate every range before changing anything.
  for (let i = 0; i < nr; i++) {
    const len = v.getUint32(i * 16 + 4, true);
    const slba = Number(v.getBigUint64(i * 16 + 8, true));
    if (slba + len > ns.lbaCount) return Status.LbaOutOfRange;
  }
  if (!ad) return Status.Success;
  for (let i = 0; i < nr; i++) {
    const len = v.getUint32(i * 16 + 4, true);
    if (len === 0) continue;
    const slba = Number(v.getBigUint64(i * 16 + 8, true));
    ns.store.deallocate(slba * ns.lbaBytes, len * ns.lbaBytes);
    c.lbaWritten(ns.nsid, slba, len, true);
  }
  return Status.Success;
}
