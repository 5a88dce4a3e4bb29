/**
 * Submission Queue Entry (64 bytes) and Completion Queue Entry (16 bytes), NVMe Base 2.1 §4.2.
 * Accessors read a little-endian entry in place from a DataView at a byte offset, so the hot path
 * allocates nothing.
 */
export const SQE_BYTES = 64;
export const CQE_BYTES = 16;
/** CC.IOSQES / CC.IOCQES values for the entry sizes above (2^n). */
export const SQE_SIZE_LOG2 = 6;
export const CQE_SIZE_LOG2 = 4;

/** Byte offsets of SQE fields (Figure "Common Command Format"). */
export const SqeOffset = {
  /** CDW0: OPC bits 7:0, FUSE bits 9:8, PSDT bits 15:14, CID bits 31:16. */
  CDW0: 0,
  OPC: 0,
  FLAGS: 1,
  CID: 2,
  NSID: 4,
  CDW2: 8,
  CDW3: 12,
  MPTR: 16,
  /** Data Pointer: PRP1 (8 bytes) + PRP2 (8 bytes), or one 16-byte SGL descriptor. */
  DPTR: 24,
  PRP1: 24,
  PRP2: 32,
  CDW10: 40,
  CDW11: 44,
  CDW12: 48,
  CDW13: 52,
  CDW14: 56,
  CDW15: 60,
} as const;

/** PSDT (PRP or SGL for Data Transfer), SQE byte 1 bits 7:6. */
export const Psdt = { Prp: 0, SglMetaBuffer: 1, SglMetaSegment: 2 } as const;

export function sqeOpcode(v: DataView, at: number): number {
  return v.getUint8(at);
}
export function sqeFuse(v: DataView, at: number): number {
  return v.getUint8(at + 1) & 0x3;
}
export function sqePsdt(v: DataView, at: number): number {
  return (v.getUint8(at + 1) >> 6) & 0x3;
}
export function sqeCid(v: DataView, at: number): number {
  return v.getUint16(at + 2, true);
}
export function sqeNsid(v: DataView, at: number): number {
  return v.getUint32(at + 4, true);
}
/** Command dword n (0..15) of the SQE at `at`. */
export function sqeCdw(v: DataView, at: number, n: number): number {
  return v.getUint32(at + n * 4, true);
}
export function sqePrp1(v: DataView, at: number): number {
  return readU64AsNumber(v, at + SqeOffset.PRP1);
}
export function sqePrp2(v: DataView, at: number): number {
  return readU64AsNumber(v, at + SqeOffset.PRP2);
}

/**
 * A guest-physical address as a JS number. Addresses above 2^53 cannot be represented; they are
 * returned as `Number.MAX_SAFE_INTEGER`, which no DMA map contains, so they fail bounds checks.
 */
export function readU64AsNumber(v: DataView, at: number): number {
  const lo = v.getUint32(at, true);
  const hi = v.getUint32(at + 4, true);
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER;
  return hi * 0x1_0000_0000 + lo;
}
export function writeU64FromNumber(v: DataView, at: number, value: number): void {
  v.setUint32(at, value >>> 0, true);
  v.setUint32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** Fields of an SQE, for building commands (guest driver, tests) and for logs. */
export interface SqeFields {
  opc: number;
  fuse?: number;
  psdt?: number;
  cid: number;
  nsid?: number;
  cdw2?: number;
  cdw3?: number;
  mptr?: number;
  prp1?: number;
  prp2?: number;
  cdw10?: number;
  cdw11?: number;
  cdw12?: number;
  cdw13?: number;
  cdw14?: number;
  cdw15?: number;
}

export function encodeSqe(f: SqeFields, v: DataView, at: number): void {
  v.setUint8(at, f.opc);
  v.setUint8(at + 1, ((f.fuse ?? 0) & 0x3) | (((f.psdt ?? 0) & 0x3) << 6));
  v.setUint16(at + 2, f.cid, true);
  v.setUint32(at + 4, f.nsid ?? 0, true);
  v.setUint32(at + 8, f.cdw2 ?? 0, true);
  v.setUint32(at + 12, f.cdw3 ?? 0, true);
  writeU64FromNumber(v, at + 16, f.mptr ?? 0);
  writeU64FromNumber(v, at + 24, f.prp1 ?? 0);
  writeU64FromNumber(v, at + 32, f.prp2 ?? 0);
  v.setUint32(at + 40, (f.cdw10 ?? 0) >>> 0, true);
  v.setUint32(at + 44, (f.cdw11 ?? 0) >>> 0, true);
  v.setUint32(at + 48, (f.cdw12 ?? 0) >>> 0, true);
  v.setUint32(at + 52, (f.cdw13 ?? 0) >>> 0, true);
  v.setUint32(at + 56, (f.cdw14 ?? 0) >>> 0, true);
  v.setUint32(at + 60, (f.cdw15 ?? 0) >>> 0, true);
}

export function decodeSqe(v: DataView, at: number): Required<SqeFields> {
  return {
    opc: v.getUint8(at),
    fuse: sqeFuse(v, at),
    psdt: sqePsdt(v, at),
    cid: sqeCid(v, at),
    nsid: sqeNsid(v, at),
    cdw2: v.getUint32(at + 8, true),
    cdw3: v.getUint32(at + 12, true),
    mptr: readU64AsNumber(v, at + 16),
    prp1: sqePrp1(v, at),
    prp2: sqePrp2(v, at),
    cdw10: sqeCdw(v, at, 10),
    cdw11: sqeCdw(v, at, 11),
    cdw12: sqeCdw(v, at, 12),
    cdw13: sqeCdw(v, at, 13),
    cdw14: sqeCdw(v, at, 14),
    cdw15: sqeCdw(v, at, 15),
  };
}

/** Byte offsets of CQE fields (Figure "Common Completion Queue Entry Layout"). */
export const CqeOffset = {
  DW0: 0,
  DW1: 4,
  /** SQ Head Pointer. */
  SQHD: 8,
  /** SQ Identifier. */
  SQID: 10,
  CID: 12,
  /** Phase Tag (bit 0) and Status Field (bits 15:1). */
  STATUS: 14,
} as const;

export interface CqeFields {
  dw0: number;
  dw1: number;
  sqhd: number;
  sqid: number;
  cid: number;
  phase: number;
  /** 15-bit status field (see status.ts). */
  status: number;
}

export function encodeCqe(
  v: DataView,
  at: number,
  dw0: number,
  dw1: number,
  sqhd: number,
  sqid: number,
  cid: number,
  phase: number,
  status: number,
): void {
  v.setUint32(at, dw0 >>> 0, true);
  v.setUint32(at + 4, dw1 >>> 0, true);
  v.setUint16(at + 8, sqhd, true);
  v.setUint16(at + 10, sqid, true);
  v.setUint16(at + 12, cid, true);
  // Written last so a host polling the phase tag sees a complete entry.
  v.setUint16(at + 14, ((status & 0x7fff) << 1) | (phase & 1), true);
}

export function decodeCqe(v: DataView, at: number): CqeFields {
  const sf = v.getUint16(at + 14, true);
  return {
    dw0: v.getUint32(at, true),
    dw1: v.getUint32(at + 4, true),
    sqhd: v.getUint16(at + 8, true),
    sqid: v.getUint16(at + 10, true),
    cid: v.getUint16(at + 12, true),
    phase: sf & 1,
    status: sf >>> 1,
  };
}

export function cqePhase(v: DataView, at: number): number {
  return v.getUint8(at + 14) & 1;
}
