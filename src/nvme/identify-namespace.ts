/**
 * Identify Namespace data structure for the NVM Command Set (CNS 00h, 4096 bytes), NVM Command Set
 * Specification 1.1 Figure "Identify Namespace Data Structure, NVM Command Set", with all 64 LBA
 * Format descriptors (bytes 128–383) and the vendor-specific area (bytes 3840–4095).
 *
 * NSZE / NCAP / NUSE are counts of logical blocks carried as numbers: values up to 2^53 − 1 are exact
 * (4 EiB of 512-byte blocks); larger values decode as `Number.MAX_SAFE_INTEGER`.
 */
import {
  bytes,
  dataView,
  fit,
  type Layout,
  readLayout,
  structs,
  target,
  u8,
  u16,
  u32,
  u64n,
  u128,
  writeLayout,
} from "./codec.ts";

export const IDENTIFY_NAMESPACE_BYTES = 4096;
export const LBA_FORMAT_BYTES = 4;
export const LBA_FORMATS = 64;
/** Byte offset of LBA Format 0. */
export const LBAF_OFFSET = 128;
export const IDENTIFY_NAMESPACE_VS_OFFSET = 3840;
export const IDENTIFY_NAMESPACE_VS_BYTES = 256;

/** LBA Format data structure (4 bytes). */
export interface LbaFormat {
  /** Metadata Size, bytes per logical block. */
  ms: number;
  /** LBA Data Size, log2 bytes (9 = 512, 12 = 4096); 0 = format not supported. */
  lbads: number;
  /** Relative Performance (bits 1:0): 0 best … 3 degraded. */
  rp: number;
}

const lbafLayout: Layout<LbaFormat> = {
  ms: u16(0),
  lbads: u8(2),
  rp: u8(3),
};

export interface IdentifyNamespace {
  /** Namespace Size, logical blocks. */
  nsze: number;
  /** Namespace Capacity, logical blocks. */
  ncap: number;
  /** Namespace Utilization, logical blocks. */
  nuse: number;
  /** Namespace Features (NSFEAT_*). */
  nsfeat: number;
  /** Number of LBA Formats, 0's based. */
  nlbaf: number;
  /** Formatted LBA Size: bits 3:0 format index low, bit 4 metadata at end of LBA, bits 6:5 index high. */
  flbas: number;
  /** Metadata Capabilities. */
  mc: number;
  /** End-to-end Data Protection Capabilities. */
  dpc: number;
  /** End-to-end Data Protection Type Settings. */
  dps: number;
  /** Namespace Multi-path I/O and Namespace Sharing Capabilities (bit 0 shared). */
  nmic: number;
  /** Reservation Capabilities. */
  rescap: number;
  /** Format Progress Indicator. */
  fpi: number;
  /** Deallocate Logical Block Features (DLFEAT_*). */
  dlfeat: number;
  /** Namespace Atomic Write Unit Normal, 0's based. */
  nawun: number;
  /** Namespace Atomic Write Unit Power Fail, 0's based. */
  nawupf: number;
  /** Namespace Atomic Compare & Write Unit, 0's based. */
  nacwu: number;
  /** Namespace Atomic Boundary Size Normal, 0's based. */
  nabsn: number;
  /** Namespace Atomic Boundary Offset. */
  nabo: number;
  /** Namespace Atomic Boundary Size Power Fail, 0's based. */
  nabspf: number;
  /** Namespace Optimal I/O Boundary, logical blocks. */
  noiob: number;
  /** NVM Capacity, bytes. */
  nvmcap: bigint;
  /** Namespace Preferred Write Granularity, 0's based. */
  npwg: number;
  /** Namespace Preferred Write Alignment, 0's based. */
  npwa: number;
  /** Namespace Preferred Deallocate Granularity, 0's based. */
  npdg: number;
  /** Namespace Preferred Deallocate Alignment, 0's based. */
  npda: number;
  /** Namespace Optimal Write Size, 0's based. */
  nows: number;
  /** Maximum Single Source Range Length (Copy). */
  mssrl: number;
  /** Maximum Copy Length. */
  mcl: number;
  /** Maximum Source Range Count, 0's based. */
  msrc: number;
  /** Key Per I/O Status. */
  kpios: number;
  /** Number of Unique Capability LBA Formats. */
  nulbaf: number;
  /** Key Per I/O Data Access Alignment and Granularity. */
  kpiodaag: number;
  /** ANA Group Identifier. */
  anagrpid: number;
  /** Namespace Attributes (bit 0 write protected). */
  nsattr: number;
  /** NVM Set Identifier. */
  nvmsetid: number;
  /** Endurance Group Identifier. */
  endgid: number;
  /** Namespace Globally Unique Identifier (16 bytes). */
  nguid: Uint8Array;
  /** IEEE Extended Unique Identifier (8 bytes). */
  eui64: Uint8Array;
  /** LBA Formats 0–63 (decode returns all 64; encode writes those given). */
  lbaf: LbaFormat[];
  /** Vendor Specific area (256 bytes at 3840). */
  vs: Uint8Array;
}

const layout: Layout<IdentifyNamespace> = {
  nsze: u64n(0),
  ncap: u64n(8),
  nuse: u64n(16),
  nsfeat: u8(24),
  nlbaf: u8(25),
  flbas: u8(26),
  mc: u8(27),
  dpc: u8(28),
  dps: u8(29),
  nmic: u8(30),
  rescap: u8(31),
  fpi: u8(32),
  dlfeat: u8(33),
  nawun: u16(34),
  nawupf: u16(36),
  nacwu: u16(38),
  nabsn: u16(40),
  nabo: u16(42),
  nabspf: u16(44),
  noiob: u16(46),
  nvmcap: u128(48),
  npwg: u16(64),
  npwa: u16(66),
  npdg: u16(68),
  npda: u16(70),
  nows: u16(72),
  mssrl: u16(74),
  mcl: u32(76),
  msrc: u8(80),
  kpios: u8(81),
  nulbaf: u8(82),
  kpiodaag: u32(84),
  anagrpid: u32(92),
  nsattr: u8(99),
  nvmsetid: u16(100),
  endgid: u16(102),
  nguid: bytes(104, 16),
  eui64: bytes(120, 8),
  lbaf: structs(LBAF_OFFSET, LBA_FORMATS, LBA_FORMAT_BYTES, lbafLayout),
  vs: bytes(IDENTIFY_NAMESPACE_VS_OFFSET, IDENTIFY_NAMESPACE_VS_BYTES),
};

export function encodeIdentifyNamespace(v: IdentifyNamespace, dst?: Uint8Array): Uint8Array {
  const out = target(dst, IDENTIFY_NAMESPACE_BYTES);
  writeLayout(layout, v, dataView(out));
  return out;
}

export function decodeIdentifyNamespace(src: Uint8Array): IdentifyNamespace {
  return readLayout(layout, dataView(fit(src, IDENTIFY_NAMESPACE_BYTES)));
}

/** An Identify Namespace value with every field 0 (64 zero LBA formats), then `fields`. */
export function makeIdentifyNamespace(fields: Partial<IdentifyNamespace> = {}): IdentifyNamespace {
  return { ...decodeIdentifyNamespace(new Uint8Array(IDENTIFY_NAMESPACE_BYTES)), ...fields };
}

/** LBADS for a logical block size: 512 → 9, 4096 → 12. Throws for a size that is not 2^n ≥ 512. */
export function lbadsForBytes(lbaBytes: number): number {
  const n = Math.log2(lbaBytes);
  if (!Number.isInteger(n) || n < 9) throw new RangeError(`logical block size ${lbaBytes} is not 2^n >= 512`);
  return n;
}

/** Logical block size in bytes for an LBADS value (9 → 512); 0 when the format is not supported (< 9). */
export function bytesForLbads(lbads: number): number {
  return lbads < 9 || lbads > 31 ? 0 : 2 ** lbads;
}

/** The LBA format index selected by FLBAS (bits 3:0 low, bits 6:5 high). */
export function flbasIndex(flbas: number): number {
  return (flbas & 0xf) | (((flbas >> 5) & 0x3) << 4);
}

/** FLBAS for a format index (0–63) and metadata placement (bit 4: extended LBA). */
export function encodeFlbas(index: number, metadataAtEndOfLba = false): number {
  return (index & 0xf) | (((index >> 4) & 0x3) << 5) | (metadataAtEndOfLba ? 0x10 : 0);
}

/** NSFEAT bits. */
export const NSFEAT_THIN_PROVISIONING = 1 << 0;
/** NAWUN / NAWUPF / NACWU are defined for this namespace. */
export const NSFEAT_NSABP = 1 << 1;
/** Deallocated or Unwritten Logical Block error supported. */
export const NSFEAT_DAE = 1 << 2;
export const NSFEAT_UIDREUSE = 1 << 3;
/** NPWG, NPWA, NPDG, NPDA, NOWS are defined. */
export const NSFEAT_OPTPERF = 1 << 4;

/** DLFEAT: bits 2:0 value read from a deallocated block (1 = all zeroes), bit 3 DEAC in Write Zeroes. */
export const DLFEAT_READ_ZEROES = 0x1;
export const DLFEAT_WRITE_ZEROES_DEAC = 1 << 3;
export const DLFEAT_GUARD_CRC = 1 << 4;

/** NMIC: bit 0 the namespace may be attached to two or more controllers. */
export const NMIC_SHARED = 1 << 0;
