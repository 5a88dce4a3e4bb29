/**
 * Identify command fields (admin 06h), NVMe Base 2.1 §5.1.13:
 *   CDW10: CNS 7:0 (Cns in identifiers.ts), CNTID 31:16
 *   CDW11: CNS Specific Identifier 15:0, CSI 31:24
 *   CDW14: UUID Index 6:0
 * The NSID is in the SQE (CDW1). The data returned is always 4096 bytes.
 */
import { bits, type CommandDwords, dwords, pack, place } from "./codec.ts";

export const IDENTIFY_DATA_BYTES = 4096;

export interface IdentifyFields {
  /** Controller or Namespace Structure. */
  cns: number;
  /** Controller Identifier (CNS 12h, 13h, 15h: lowest CNTLID to list). */
  cntid: number;
  /** CNS Specific Identifier. */
  cnssid: number;
  /** Command Set Identifier. */
  csi: number;
  /** UUID Index. */
  uuidIndex: number;
}

export function encodeIdentify(f: IdentifyFields): CommandDwords {
  return dwords({
    cdw10: pack(place(f.cns, 0, 8), place(f.cntid, 16, 16)),
    cdw11: pack(place(f.cnssid, 0, 16), place(f.csi, 24, 8)),
    cdw14: place(f.uuidIndex, 0, 7),
  });
}

export function decodeIdentify(c: Partial<CommandDwords>): IdentifyFields {
  const d = dwords(c);
  return {
    cns: bits(d.cdw10, 0, 8),
    cntid: bits(d.cdw10, 16, 16),
    cnssid: bits(d.cdw11, 0, 16),
    csi: bits(d.cdw11, 24, 8),
    uuidIndex: bits(d.cdw14, 0, 7),
  };
}
