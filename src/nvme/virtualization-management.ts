/**
 * Virtualization Management command fields (admin 1Ch), NVMe Base 2.1 (reference §4.12):
 *   CDW10: ACT 3:0 (VirtMgmtAction), RT 10:8 (VirtMgmtResourceType), CNTLID 31:16
 *   CDW11: NR 15:0 (number of resources)
 * Completion DW0: number of resources allocated / assigned (meaning unverified against the spec).
 */
import { bits, type CommandDwords, dwords, pack, place } from "./codec.ts";

export interface VirtualizationManagementFields {
  /** Action (VirtMgmtAction in identifiers.ts). */
  act: number;
  /** Resource Type (VirtMgmtResourceType). */
  rt: number;
  /** Controller Identifier of the primary or secondary controller acted on. */
  cntlid: number;
  /** Number of Controller Resources. */
  nr: number;
}

export function encodeVirtualizationManagement(f: VirtualizationManagementFields): CommandDwords {
  return dwords({
    cdw10: pack(place(f.act, 0, 4), place(f.rt, 8, 3), place(f.cntlid, 16, 16)),
    cdw11: place(f.nr, 0, 16),
  });
}

export function decodeVirtualizationManagement(c: Partial<CommandDwords>): VirtualizationManagementFields {
  const d = dwords(c);
  return {
    act: bits(d.cdw10, 0, 4),
    rt: bits(d.cdw10, 8, 3),
    cntlid: bits(d.cdw10, 16, 16),
    nr: bits(d.cdw11, 0, 16),
  };
}
