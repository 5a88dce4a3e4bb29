/**
 * Get Log Page command fields (admin opcode 02h), NVMe Base 2.1 Figures "Get Log Page – Command
 * Dword 10" … "Command Dword 14":
 *
 *   CDW10: LID 7:0, LSP 14:8, RAE 15, NUMDL 31:16
 *   CDW11: NUMDU 15:0, LSI 31:16
 *   CDW12: LPOL (offset bits 31:0)      CDW13: LPOU (offset bits 63:32)
 *   CDW14: UUID Index 6:0, OT 23, CSI 31:24
 *
 * NUMD (NUMDU:NUMDL) is a 0's based dword count. LPO is a byte offset, or an entry index when OT = 1;
 * it is carried as a number (exact below 2^53).
 */
import { bit, bits, type CommandDwords, dwords, flag, joinU64, pack, place, splitU64 } from "./codec.ts";

export interface GetLogPageFields {
  /** Log Page Identifier. */
  lid: number;
  /** Log Specific Parameter (7 bits). */
  lsp: number;
  /** Retain Asynchronous Event. */
  rae: boolean;
  /** Number of Dwords, 0's based (NUMDU << 16 | NUMDL). */
  numd: number;
  /** Log Specific Identifier. */
  lsi: number;
  /** Log Page Offset (LPOU:LPOL), bytes (or entries when `ot`). */
  lpo: number;
  /** UUID Index (7 bits). */
  uuidIndex: number;
  /** Offset Type: LPO is an index into a list of entries. */
  ot: boolean;
  /** Command Set Identifier. */
  csi: number;
}

export function encodeGetLogPage(f: GetLogPageFields): CommandDwords {
  const [lpol, lpou] = splitU64(f.lpo);
  return dwords({
    cdw10: pack(place(f.lid, 0, 8), place(f.lsp, 8, 7), flag(f.rae, 15), place(f.numd, 16, 16)),
    cdw11: pack(place(f.numd >>> 16, 0, 16), place(f.lsi, 16, 16)),
    cdw12: lpol,
    cdw13: lpou,
    cdw14: pack(place(f.uuidIndex, 0, 7), flag(f.ot, 23), place(f.csi, 24, 8)),
  });
}

export function decodeGetLogPage(c: Partial<CommandDwords>): GetLogPageFields {
  const d = dwords(c);
  return {
    lid: bits(d.cdw10, 0, 8),
    lsp: bits(d.cdw10, 8, 7),
    rae: bit(d.cdw10, 15),
    numd: (bits(d.cdw11, 0, 16) * 0x10000 + bits(d.cdw10, 16, 16)) >>> 0,
    lsi: bits(d.cdw11, 16, 16),
    lpo: joinU64(d.cdw12, d.cdw13),
    uuidIndex: bits(d.cdw14, 0, 7),
    ot: bit(d.cdw14, 23),
    csi: bits(d.cdw14, 24, 8),
  };
}

/** Bytes a Get Log Page transfers for a 0's based NUMD. */
export function getLogPageBytes(numd: number): number {
  return (numd + 1) * 4;
}

/** The 0's based NUMD that transfers `byteCount` bytes (a multiple of 4, at least 4). */
export function getLogPageNumd(byteCount: number): number {
  if (byteCount < 4 || byteCount % 4 !== 0) throw new RangeError(`log transfer of ${byteCount} bytes`);
  return byteCount / 4 - 1;
}
