/**
 * Error Information log page (LID 01h), NVMe Base 2.1 Figure "Get Log Page – Error Information Log
 * Entry": a list of 64-byte entries, newest first; the page holds ELPE + 1 entries (Identify
 * Controller). An entry with Error Count 0 is unused.
 */
import {
  dataView,
  type Field,
  fit,
  type Layout,
  readLayout,
  target,
  u8,
  u16,
  u32,
  u64,
  writeLayout,
} from "./codec.ts";

export const ERROR_INFORMATION_ENTRY_BYTES = 64;
/** SQID / CID / Parameter Error Location value meaning "not applicable". */
export const ERROR_INFO_NOT_APPLICABLE = 0xffff;

export interface ErrorInformationEntry {
  /** Error Count: unique, incrementing; 0 = entry unused. */
  errorCount: bigint;
  /** Submission Queue ID of the command (FFFFh: not command specific). */
  sqid: number;
  /** Command ID of the command (FFFFh: not command specific). */
  cid: number;
  /** Status Field bit 0: the Phase Tag of the completion posted. */
  pt: number;
  /** Status Field bits 15:1: the 15-bit status of the completion (as in status.ts). */
  status: number;
  /**
   * Parameter Error Location: bits 7:0 byte of the command (SQE) in error, bits 10:8 bit within that
   * byte; FFFFh when the error is not specific to a parameter. Build it with `pel(byte, bit)`.
   */
  pel: number;
  /** LBA of the first logical block of the failing command, if any. */
  lba: bigint;
  /** Namespace of the error (0 / FFFFFFFFh when none). */
  nsid: number;
  /** Vendor Specific Information Available: log page ID with more information (0 = none). */
  vsia: number;
  /** Transport Type (0 for PCIe). */
  trtype: number;
  /** Command Set Indicator of the command. */
  csi: number;
  /** Opcode of the command. */
  opc: number;
  /** Command Specific Information. */
  commandSpecificInfo: bigint;
  /** Transport Type Specific Information. */
  transportTypeSpecificInfo: number;
  /** Log Page Version (byte 63). */
  logPageVersion: number;
}

/** Status Field word: phase tag bit 0, status bits 15:1. */
const statusWord = (part: "pt" | "status"): Field<number> => ({
  at: 12,
  bytes: 2,
  read: (v, b) => (part === "pt" ? v.getUint16(b + 12, true) & 1 : v.getUint16(b + 12, true) >>> 1),
  write: (v, b, x) => {
    const w = v.getUint16(b + 12, true);
    v.setUint16(b + 12, part === "pt" ? (w & ~1) | (x & 1) : (w & 1) | ((x & 0x7fff) << 1), true);
  },
});

/** Parameter Error Location for byte `byteInSqe` (0–63), bit `bitInByte` (0–7). */
export function pel(byteInSqe: number, bitInByte = 0): number {
  return (byteInSqe & 0xff) | ((bitInByte & 0x7) << 8);
}
export function pelByte(pelWord: number): number {
  return pelWord & 0xff;
}
export function pelBit(pelWord: number): number {
  return (pelWord >> 8) & 0x7;
}

const layout: Layout<ErrorInformationEntry> = {
  errorCount: u64(0),
  sqid: u16(8),
  cid: u16(10),
  pt: statusWord("pt"),
  status: statusWord("status"),
  pel: u16(14),
  lba: u64(16),
  nsid: u32(24),
  vsia: u8(28),
  trtype: u8(29),
  csi: u8(30),
  opc: u8(31),
  commandSpecificInfo: u64(32),
  transportTypeSpecificInfo: u16(40),
  logPageVersion: u8(63),
};

export function encodeErrorInformationEntry(v: ErrorInformationEntry, dst?: Uint8Array): Uint8Array {
  const out = target(dst, ERROR_INFORMATION_ENTRY_BYTES);
  writeLayout(layout, v, dataView(out));
  return out;
}

export function decodeErrorInformationEntry(src: Uint8Array): ErrorInformationEntry {
  return readLayout(layout, dataView(fit(src, ERROR_INFORMATION_ENTRY_BYTES)));
}

/** An unused entry (all zero), then `fields`. */
export function makeErrorInformationEntry(
  fields: Partial<ErrorInformationEntry> = {},
): ErrorInformationEntry {
  return { ...decodeErrorInformationEntry(new Uint8Array(ERROR_INFORMATION_ENTRY_BYTES)), ...fields };
}

/**
 * The whole page: `entryCount` entries (ELPE + 1), the given ones first, the rest unused (zero).
 * Throws when more entries are given than fit.
 */
export function encodeErrorInformationLog(
  entries: readonly ErrorInformationEntry[],
  entryCount: number,
  dst?: Uint8Array,
): Uint8Array {
  if (entries.length > entryCount)
    throw new RangeError(`log holds ${entryCount} entries, got ${entries.length}`);
  const out = target(dst, entryCount * ERROR_INFORMATION_ENTRY_BYTES);
  const v = dataView(out);
  entries.forEach((e, i) => {
    writeLayout(layout, e, v, i * ERROR_INFORMATION_ENTRY_BYTES);
  });
  return out;
}

/** Every whole 64-byte entry in `src`, unused ones (Error Count 0) included. */
export function decodeErrorInformationLog(src: Uint8Array): ErrorInformationEntry[] {
  const v = dataView(src);
  const n = Math.floor(src.byteLength / ERROR_INFORMATION_ENTRY_BYTES);
  return Array.from({ length: n }, (_, i) => readLayout(layout, v, i * ERROR_INFORMATION_ENTRY_BYTES));
}
