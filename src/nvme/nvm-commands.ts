/**
 * NVM Command Set command fields (NVM Command Set Specification 1.1 §3) and the two data structures
 * I/O commands carry: Dataset Management ranges and SGL descriptors (NVMe Base 2.1 §4.1.2).
 *
 *   Read / Write / Compare / Verify / Write Uncorrectable:
 *     CDW10/11 SLBA; CDW12 NLB 15:0 (0's based), DTYPE 23:20 (Write), STC 24 (Write), PRINFO 29:26,
 *     FUA 30, LR 31; CDW13 DSM 7:0, DSPEC 31:16 (Write); CDW14 ILBRT; CDW15 LBAT 15:0, LBATM 31:16
 *   Write Zeroes: CDW12 NLB 15:0, NSZ 23, STC 24, DEAC 25, PRINFO 29:26, FUA 30, LR 31 (CDW14/15 as above)
 *   Dataset Management: CDW10 NR 7:0 (0's based); CDW11 IDR 0, IDW 1, AD 2
 *
 * SLBA is a number (exact below 2^53; larger values decode as `Number.MAX_SAFE_INTEGER`, which is past
 * the end of any namespace).
 */
import {
  bit,
  bits,
  type CommandDwords,
  dataView,
  dwords,
  fit,
  flag,
  joinU64,
  pack,
  place,
  splitU64,
  target,
} from "./codec.ts";
import { readU64AsNumber, writeU64FromNumber } from "./sqe.ts";

export interface NvmIoFields {
  /** Starting LBA. */
  slba: number;
  /** Number of Logical Blocks, 0's based. */
  nlb: number;
  /** Directive Type (Write). */
  dtype: number;
  /** Storage Tag Check (Write). */
  stc: boolean;
  /** Protection Information field (PRACT bit 3, PRCHK bits 2:0). */
  prinfo: number;
  /** Force Unit Access. */
  fua: boolean;
  /** Limited Retry. */
  lr: boolean;
  /** Dataset Management hints. */
  dsm: number;
  /** Directive Specific (Write). */
  dspec: number;
  /** Initial Logical Block Reference Tag (low 32 bits). */
  ilbrt: number;
  /** Logical Block Application Tag. */
  lbat: number;
  /** Logical Block Application Tag Mask. */
  lbatm: number;
}

export function encodeNvmIo(f: NvmIoFields): CommandDwords {
  const [lo, hi] = splitU64(f.slba);
  return dwords({
    cdw10: lo,
    cdw11: hi,
    cdw12: pack(
      place(f.nlb, 0, 16),
      place(f.dtype, 20, 4),
      flag(f.stc, 24),
      place(f.prinfo, 26, 4),
      flag(f.fua, 30),
      flag(f.lr, 31),
    ),
    cdw13: pack(place(f.dsm, 0, 8), place(f.dspec, 16, 16)),
    cdw14: f.ilbrt,
    cdw15: pack(place(f.lbat, 0, 16), place(f.lbatm, 16, 16)),
  });
}

export function decodeNvmIo(c: Partial<CommandDwords>): NvmIoFields {
  const d = dwords(c);
  return {
    slba: joinU64(d.cdw10, d.cdw11),
    nlb: bits(d.cdw12, 0, 16),
    dtype: bits(d.cdw12, 20, 4),
    stc: bit(d.cdw12, 24),
    prinfo: bits(d.cdw12, 26, 4),
    fua: bit(d.cdw12, 30),
    lr: bit(d.cdw12, 31),
    dsm: bits(d.cdw13, 0, 8),
    dspec: bits(d.cdw13, 16, 16),
    ilbrt: d.cdw14,
    lbat: bits(d.cdw15, 0, 16),
    lbatm: bits(d.cdw15, 16, 16),
  };
}

/** Defaults for every field but SLBA / NLB. */
export function makeNvmIo(fields: Pick<NvmIoFields, "slba" | "nlb"> & Partial<NvmIoFields>): NvmIoFields {
  return { ...decodeNvmIo({}), ...fields };
}

export interface WriteZeroesFields {
  slba: number;
  /** Number of Logical Blocks, 0's based. */
  nlb: number;
  /** Namespace Zeroes: zero the whole namespace. */
  nsz: boolean;
  stc: boolean;
  /** Deallocate the blocks (they then read as zeroes). */
  deac: boolean;
  prinfo: number;
  fua: boolean;
  lr: boolean;
  ilbrt: number;
  lbat: number;
  lbatm: number;
}

export function encodeWriteZeroes(f: WriteZeroesFields): CommandDwords {
  const [lo, hi] = splitU64(f.slba);
  return dwords({
    cdw10: lo,
    cdw11: hi,
    cdw12: pack(
      place(f.nlb, 0, 16),
      flag(f.nsz, 23),
      flag(f.stc, 24),
      flag(f.deac, 25),
      place(f.prinfo, 26, 4),
      flag(f.fua, 30),
      flag(f.lr, 31),
    ),
    cdw14: f.ilbrt,
    cdw15: pack(place(f.lbat, 0, 16), place(f.lbatm, 16, 16)),
  });
}

export function decodeWriteZeroes(c: Partial<CommandDwords>): WriteZeroesFields {
  const d = dwords(c);
  return {
    slba: joinU64(d.cdw10, d.cdw11),
    nlb: bits(d.cdw12, 0, 16),
    nsz: bit(d.cdw12, 23),
    stc: bit(d.cdw12, 24),
    deac: bit(d.cdw12, 25),
    prinfo: bits(d.cdw12, 26, 4),
    fua: bit(d.cdw12, 30),
    lr: bit(d.cdw12, 31),
    ilbrt: d.cdw14,
    lbat: bits(d.cdw15, 0, 16),
    lbatm: bits(d.cdw15, 16, 16),
  };
}

// ---- Dataset Management ----------------------------------------------------------------------------

export interface DatasetManagementFields {
  /** Number of Ranges, 0's based (1–256 ranges). */
  nr: number;
  /** Integral Dataset for Read. */
  idr: boolean;
  /** Integral Dataset for Write. */
  idw: boolean;
  /** Attribute – Deallocate. */
  ad: boolean;
}

export function encodeDatasetManagement(f: DatasetManagementFields): CommandDwords {
  return dwords({ cdw10: place(f.nr, 0, 8), cdw11: pack(flag(f.idr, 0), flag(f.idw, 1), flag(f.ad, 2)) });
}

export function decodeDatasetManagement(c: Partial<CommandDwords>): DatasetManagementFields {
  const d = dwords(c);
  return { nr: bits(d.cdw10, 0, 8), idr: bit(d.cdw11, 0), idw: bit(d.cdw11, 1), ad: bit(d.cdw11, 2) };
}

export const DSM_RANGE_BYTES = 16;
export const DSM_MAX_RANGES = 256;

export interface DsmRange {
  /** Context Attributes. */
  cattr: number;
  /** Length in logical blocks (a count, NOT 0's based). */
  lengthLbas: number;
  /** Starting LBA. */
  slba: number;
}

export function encodeDsmRanges(ranges: readonly DsmRange[], dst?: Uint8Array): Uint8Array {
  if (ranges.length > DSM_MAX_RANGES) throw new RangeError(`at most ${DSM_MAX_RANGES} ranges`);
  const out = target(dst, ranges.length * DSM_RANGE_BYTES);
  const view = dataView(out);
  ranges.forEach((r, i) => {
    const at = i * DSM_RANGE_BYTES;
    view.setUint32(at, r.cattr >>> 0, true);
    view.setUint32(at + 4, r.lengthLbas >>> 0, true);
    writeU64FromNumber(view, at + 8, r.slba);
  });
  return out;
}

/** Up to `count` ranges (NR + 1); ranges past the end of `src` are not returned. */
export function decodeDsmRanges(src: Uint8Array, count: number): DsmRange[] {
  const view = dataView(src);
  const n = Math.min(count, Math.floor(src.byteLength / DSM_RANGE_BYTES));
  return Array.from({ length: n }, (_, i) => ({
    cattr: view.getUint32(i * DSM_RANGE_BYTES, true),
    lengthLbas: view.getUint32(i * DSM_RANGE_BYTES + 4, true),
    slba: readU64AsNumber(view, i * DSM_RANGE_BYTES + 8),
  }));
}

// ---- SGL descriptor --------------------------------------------------------------------------------

export const SGL_DESCRIPTOR_BYTES = 16;
/** SGL Descriptor Type (SGL Identifier bits 7:4). */
export const SglDescriptorType = {
  DataBlock: 0x0,
  BitBucket: 0x1,
  Segment: 0x2,
  LastSegment: 0x3,
  KeyedDataBlock: 0x4,
  TransportDataBlock: 0x5,
  VendorSpecific: 0xf,
} as const;
/** SGL Descriptor Sub Type (SGL Identifier bits 3:0). */
export const SglDescriptorSubtype = { Address: 0x0, Offset: 0x1, TransportSpecific: 0xa } as const;

/** SGL descriptor: Address u64 @0, Length u32 @8, bytes 12–14 reserved, SGL Identifier @15. */
export interface SglDescriptor {
  address: number;
  /** Length, bytes. */
  length: number;
  /** SglDescriptorType. */
  type: number;
  /** SglDescriptorSubtype. */
  subtype: number;
}

export function encodeSglDescriptor(v: SglDescriptor, dst?: Uint8Array): Uint8Array {
  const out = target(dst, SGL_DESCRIPTOR_BYTES);
  const view = dataView(out);
  writeU64FromNumber(view, 0, v.address);
  view.setUint32(8, v.length >>> 0, true);
  view.setUint8(15, pack(place(v.subtype, 0, 4), place(v.type, 4, 4)));
  return out;
}

export function decodeSglDescriptor(src: Uint8Array): SglDescriptor {
  const view = dataView(fit(src, SGL_DESCRIPTOR_BYTES));
  const id = view.getUint8(15);
  return {
    address: readU64AsNumber(view, 0),
    length: view.getUint32(8, true),
    type: id >> 4,
    subtype: id & 0xf,
  };
}
