/**
 * Byte layouts of the migration feature payloads (after the 8-byte `vfio_device_feature` header) and of
 * `struct vfio_precopy_info`. All little-endian, natural alignment.
 *
 * Two dialects differ only for DMA logging: the kernel passes the range array and the report bitmap by
 * user pointer (`ranges:u64`, `bitmap:u64` fields); vfio-user carries them inline (ranges after the
 * 16-byte control header; the bitmap after the 24-byte report header in the reply).
 *
 *   MIGRATION          flags:u64                                                       8 bytes
 *   MIG_DEVICE_STATE   device_state:u32, data_fd:s32                                   8 bytes
 *   MIG_DATA_SIZE      stop_copy_length:u64                                            8 bytes
 *   DMA_LOGGING_START  page_size:u64, num_ranges:u32, reserved:u32 [, ranges:u64]      16 / 24 bytes
 *   logging range      iova:u64, length:u64                                           16 bytes
 *   DMA_LOGGING_REPORT iova:u64, length:u64, page_size:u64 [, bitmap:u64]              24 / 32 bytes
 *   precopy info       argsz:u32, flags:u32, initial_bytes:u64, dirty_bytes:u64        24 bytes
 */
import type { DmaRange } from "./backend.ts";

export const MIGRATION_BYTES = 8;
export const MIG_DEVICE_STATE_BYTES = 8;
export const MIG_DATA_SIZE_BYTES = 8;
export const DMA_LOGGING_RANGE_BYTES = 16;
export const DMA_LOGGING_CONTROL_BYTES = { kernel: 24, "vfio-user": 16 } as const;
export const DMA_LOGGING_REPORT_BYTES = { kernel: 32, "vfio-user": 24 } as const;
export const PRECOPY_INFO_BYTES = 24;

/** Payload layout of the DMA logging features. */
export type FeatureDialect = "kernel" | "vfio-user";

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

export function encodeU64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  view(out).setBigUint64(0, value, true);
  return out;
}

export function decodeU64(b: Uint8Array, offset = 0): bigint {
  return view(b).getBigUint64(offset, true);
}

export interface MigDeviceStatePayload {
  /** u32 as sent (may be any value; only 0..7 are states). */
  readonly deviceState: number;
  /** s32. */
  readonly dataFd: number;
}

export function encodeMigDeviceState(p: MigDeviceStatePayload): Uint8Array {
  const out = new Uint8Array(MIG_DEVICE_STATE_BYTES);
  writeMigDeviceState(out, p);
  return out;
}

/** Writes the 8-byte struct at the start of `dst` (which must hold it). */
export function writeMigDeviceState(dst: Uint8Array, p: MigDeviceStatePayload): void {
  const v = view(dst);
  v.setUint32(0, p.deviceState >>> 0, true);
  v.setInt32(4, p.dataFd | 0, true);
}

export function decodeMigDeviceState(b: Uint8Array): MigDeviceStatePayload {
  const v = view(b);
  return { deviceState: v.getUint32(0, true), dataFd: v.getInt32(4, true) };
}

export interface DmaLoggingControl {
  readonly pageSize: bigint;
  readonly numRanges: number;
  /** Kernel dialect only: user pointer to the range array. */
  readonly rangesPtr: bigint;
}

/** Decodes the control header (the caller checked the dialect's minimum size). */
export function decodeDmaLoggingControl(b: Uint8Array, dialect: FeatureDialect): DmaLoggingControl {
  const v = view(b);
  return {
    pageSize: v.getBigUint64(0, true),
    numRanges: v.getUint32(8, true),
    rangesPtr: dialect === "kernel" ? v.getBigUint64(16, true) : 0n,
  };
}

export function encodeDmaLoggingControl(c: DmaLoggingControl, dialect: FeatureDialect): Uint8Array {
  const out = new Uint8Array(DMA_LOGGING_CONTROL_BYTES[dialect]);
  const v = view(out);
  v.setBigUint64(0, c.pageSize, true);
  v.setUint32(8, c.numRanges, true);
  if (dialect === "kernel") v.setBigUint64(16, c.rangesPtr, true);
  return out;
}

/** Decodes `count` ranges from `b` (which must hold them). */
export function decodeDmaRanges(b: Uint8Array, count: number): DmaRange[] {
  const v = view(b);
  const out: DmaRange[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * DMA_LOGGING_RANGE_BYTES;
    out.push({ iova: v.getBigUint64(o, true), length: v.getBigUint64(o + 8, true) });
  }
  return out;
}

export function encodeDmaRanges(ranges: readonly DmaRange[]): Uint8Array {
  const out = new Uint8Array(ranges.length * DMA_LOGGING_RANGE_BYTES);
  const v = view(out);
  ranges.forEach((r, i) => {
    v.setBigUint64(i * DMA_LOGGING_RANGE_BYTES, r.iova, true);
    v.setBigUint64(i * DMA_LOGGING_RANGE_BYTES + 8, r.length, true);
  });
  return out;
}

export interface DmaLoggingReport {
  readonly iova: bigint;
  readonly length: bigint;
  readonly pageSize: bigint;
  /** Kernel dialect only: user pointer to the bitmap. */
  readonly bitmapPtr: bigint;
}

export function decodeDmaLoggingReport(b: Uint8Array, dialect: FeatureDialect): DmaLoggingReport {
  const v = view(b);
  return {
    iova: v.getBigUint64(0, true),
    length: v.getBigUint64(8, true),
    pageSize: v.getBigUint64(16, true),
    bitmapPtr: dialect === "kernel" ? v.getBigUint64(24, true) : 0n,
  };
}

export function encodeDmaLoggingReport(r: DmaLoggingReport, dialect: FeatureDialect): Uint8Array {
  const out = new Uint8Array(DMA_LOGGING_REPORT_BYTES[dialect]);
  const v = view(out);
  v.setBigUint64(0, r.iova, true);
  v.setBigUint64(8, r.length, true);
  v.setBigUint64(16, r.pageSize, true);
  if (dialect === "kernel") v.setBigUint64(24, r.bitmapPtr, true);
  return out;
}

export interface PrecopyInfoStruct {
  readonly argsz: number;
  readonly flags: number;
  readonly initialBytes: bigint;
  readonly dirtyBytes: bigint;
}

export function encodePrecopyInfo(p: PrecopyInfoStruct): Uint8Array {
  const out = new Uint8Array(PRECOPY_INFO_BYTES);
  const v = view(out);
  v.setUint32(0, p.argsz >>> 0, true);
  v.setUint32(4, p.flags >>> 0, true);
  v.setBigUint64(8, p.initialBytes, true);
  v.setBigUint64(16, p.dirtyBytes, true);
  return out;
}

export function decodePrecopyInfo(b: Uint8Array): PrecopyInfoStruct {
  const v = view(b);
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    initialBytes: v.getBigUint64(8, true),
    dirtyBytes: v.getBigUint64(16, true),
  };
}
