/**
 * SMART / Health Information log page (LID 02h, 512 bytes), NVMe Base 2.1 Figure "SMART / Health
 * Information Log Page". Temperatures in kelvin; 128-bit counters as bigint. Data Units are thousands
 * of 512-byte units, rounded up.
 */
import {
  dataView,
  fit,
  type Layout,
  readLayout,
  target,
  u8,
  u16,
  u16s,
  u32,
  u128,
  writeLayout,
} from "./codec.ts";

export const SMART_HEALTH_BYTES = 512;
export const TEMPERATURE_SENSORS = 8;

export interface SmartHealth {
  /** Critical Warning (CW_*). */
  cw: number;
  /** Composite Temperature, kelvin. */
  ctemp: number;
  /** Available Spare, percent. */
  avsp: number;
  /** Available Spare Threshold, percent. */
  avspt: number;
  /** Percentage Used (may exceed 100, saturates at 255). */
  pused: number;
  /** Endurance Group Critical Warning Summary. */
  egcws: number;
  /** Data Units Read (1000 × 512 bytes). */
  dur: bigint;
  /** Data Units Written (1000 × 512 bytes). */
  duw: bigint;
  /** Host Read Commands. */
  hrc: bigint;
  /** Host Write Commands. */
  hwc: bigint;
  /** Controller Busy Time, minutes. */
  cbt: bigint;
  /** Power Cycles. */
  pwrc: bigint;
  /** Power On Hours. */
  poh: bigint;
  /** Unsafe Shutdowns. */
  upl: bigint;
  /** Media and Data Integrity Errors. */
  mdie: bigint;
  /** Number of Error Information Log Entries (over the controller's life). */
  neile: bigint;
  /** Warning Composite Temperature Time, minutes. */
  wctt: number;
  /** Critical Composite Temperature Time, minutes. */
  cctt: number;
  /** Temperature Sensors 1–8, kelvin (0 = not implemented). */
  tsen: number[];
  /** Thermal Management Temperature 1 / 2 Transition Count. */
  tmt1tc: number;
  tmt2tc: number;
  /** Total Time For Thermal Management Temperature 1 / 2, seconds. */
  ttftmt1: number;
  ttftmt2: number;
}

const layout: Layout<SmartHealth> = {
  cw: u8(0),
  ctemp: u16(1),
  avsp: u8(3),
  avspt: u8(4),
  pused: u8(5),
  egcws: u8(6),
  dur: u128(32),
  duw: u128(48),
  hrc: u128(64),
  hwc: u128(80),
  cbt: u128(96),
  pwrc: u128(112),
  poh: u128(128),
  upl: u128(144),
  mdie: u128(160),
  neile: u128(176),
  wctt: u32(192),
  cctt: u32(196),
  tsen: u16s(200, TEMPERATURE_SENSORS),
  tmt1tc: u32(216),
  tmt2tc: u32(220),
  ttftmt1: u32(224),
  ttftmt2: u32(228),
};

/** Critical Warning bits. */
export const CW_AVAILABLE_SPARE = 1 << 0;
export const CW_TEMPERATURE = 1 << 1;
export const CW_RELIABILITY_DEGRADED = 1 << 2;
export const CW_READ_ONLY = 1 << 3;
export const CW_VOLATILE_BACKUP_FAILED = 1 << 4;
export const CW_PMR_READ_ONLY = 1 << 5;

export function encodeSmartHealth(v: SmartHealth, dst?: Uint8Array): Uint8Array {
  const out = target(dst, SMART_HEALTH_BYTES);
  writeLayout(layout, v, dataView(out));
  return out;
}

export function decodeSmartHealth(src: Uint8Array): SmartHealth {
  return readLayout(layout, dataView(fit(src, SMART_HEALTH_BYTES)));
}

/** A page with every field 0 (8 zero sensors), then `fields`. */
export function makeSmartHealth(fields: Partial<SmartHealth> = {}): SmartHealth {
  return { ...decodeSmartHealth(new Uint8Array(SMART_HEALTH_BYTES)), ...fields };
}
