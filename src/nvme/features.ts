/**
 * Set Features / Get Features (admin opcodes 09h / 0Ah): the CDW10 fields and the value dword of each
 * feature in `FeatureId` (NVMe Base 2.1 §5.1.25 "Feature Values"), plus TP4159 feature 21h
 * Controller Data Queue.
 *
 *   CDW10: FID 7:0, SEL 10:8 (Get), SV 31 (Set)        CDW14: UUID Index 6:0
 *   Set: the value is CDW11 (21h also uses CDW12/13); Get: the current value is returned in CQE DW0.
 */
import { bit, bits, type CommandDwords, dataView, dwords, fit, flag, pack, place, target } from "./codec.ts";
import { FeatureId } from "./identifiers.ts";

export interface FeaturesCdw10 {
  /** Feature Identifier. */
  fid: number;
  /** Select (Get Features): FeatureSelect in identifiers.ts. */
  sel: number;
  /** Save (Set Features). */
  sv: boolean;
}

export function encodeFeaturesCdw10(f: FeaturesCdw10): number {
  return pack(place(f.fid, 0, 8), place(f.sel, 8, 3), flag(f.sv, 31));
}

export function decodeFeaturesCdw10(cdw10: number): FeaturesCdw10 {
  return { fid: bits(cdw10, 0, 8), sel: bits(cdw10, 8, 3), sv: bit(cdw10, 31) };
}

/** UUID Index in CDW14 bits 6:0. */
export function featuresUuidIndex(cdw14: number): number {
  return bits(cdw14, 0, 7);
}

/** Get Features with SEL = 3 (Supported Capabilities) returns these bits in DW0. */
export const FEATURE_CAP_SAVEABLE = 1 << 0;
export const FEATURE_CAP_NAMESPACE_SPECIFIC = 1 << 1;
export const FEATURE_CAP_CHANGEABLE = 1 << 2;

// ---- 01h Arbitration -------------------------------------------------------------------------------

export interface Arbitration {
  /** Arbitration Burst, 2^n commands (7 = no limit). */
  ab: number;
  /** Low / Medium / High Priority Weight, 0's based. */
  lpw: number;
  mpw: number;
  hpw: number;
}
export function encodeArbitration(v: Arbitration): number {
  return pack(place(v.ab, 0, 3), place(v.lpw, 8, 8), place(v.mpw, 16, 8), place(v.hpw, 24, 8));
}
export function decodeArbitration(dw: number): Arbitration {
  return { ab: bits(dw, 0, 3), lpw: bits(dw, 8, 8), mpw: bits(dw, 16, 8), hpw: bits(dw, 24, 8) };
}

// ---- 02h Power Management --------------------------------------------------------------------------

export interface PowerManagement {
  /** Power State. */
  ps: number;
  /** Workload Hint. */
  wh: number;
}
export function encodePowerManagement(v: PowerManagement): number {
  return pack(place(v.ps, 0, 5), place(v.wh, 5, 3));
}
export function decodePowerManagement(dw: number): PowerManagement {
  return { ps: bits(dw, 0, 5), wh: bits(dw, 5, 3) };
}

// ---- 04h Temperature Threshold ---------------------------------------------------------------------

export interface TemperatureThreshold {
  /** Temperature Threshold, kelvin. */
  tmpth: number;
  /** Threshold Temperature Select: 0 composite, 1–8 sensor n, 0Fh all. */
  tmpsel: number;
  /** Threshold Type Select: 0 over, 1 under. */
  thsel: number;
  /** Temperature Threshold Hysteresis (bits 24:22). */
  tmpthh: number;
}
export const ThresholdTypeSelect = { OverTemperature: 0, UnderTemperature: 1 } as const;
export function encodeTemperatureThreshold(v: TemperatureThreshold): number {
  return pack(place(v.tmpth, 0, 16), place(v.tmpsel, 16, 4), place(v.thsel, 20, 2), place(v.tmpthh, 22, 3));
}
export function decodeTemperatureThreshold(dw: number): TemperatureThreshold {
  return { tmpth: bits(dw, 0, 16), tmpsel: bits(dw, 16, 4), thsel: bits(dw, 20, 2), tmpthh: bits(dw, 22, 3) };
}

// ---- 05h Error Recovery ----------------------------------------------------------------------------

export interface ErrorRecovery {
  /** Time Limited Error Recovery, 100 ms units (0 = none). */
  tler: number;
  /** Deallocated or Unwritten Logical Block Error Enable. */
  dulbe: boolean;
}
export function encodeErrorRecovery(v: ErrorRecovery): number {
  return pack(place(v.tler, 0, 16), flag(v.dulbe, 16));
}
export function decodeErrorRecovery(dw: number): ErrorRecovery {
  return { tler: bits(dw, 0, 16), dulbe: bit(dw, 16) };
}

// ---- 06h Volatile Write Cache ----------------------------------------------------------------------

export interface VolatileWriteCache {
  /** Volatile Write Cache Enable. */
  wce: boolean;
}
export function encodeVolatileWriteCache(v: VolatileWriteCache): number {
  return flag(v.wce, 0);
}
export function decodeVolatileWriteCache(dw: number): VolatileWriteCache {
  return { wce: bit(dw, 0) };
}

// ---- 07h Number of Queues --------------------------------------------------------------------------

/** Set Features value (requested). Both 0's based; 65535 is invalid. */
export interface NumberOfQueues {
  /** Number of I/O Submission Queues Requested, 0's based. */
  nsqr: number;
  /** Number of I/O Completion Queues Requested, 0's based. */
  ncqr: number;
}
/** Completion DW0 (allocated), both 0's based. */
export interface NumberOfQueuesAllocated {
  nsqa: number;
  ncqa: number;
}
export function encodeNumberOfQueues(v: NumberOfQueues): number {
  return pack(place(v.nsqr, 0, 16), place(v.ncqr, 16, 16));
}
export function decodeNumberOfQueues(dw: number): NumberOfQueues {
  return { nsqr: bits(dw, 0, 16), ncqr: bits(dw, 16, 16) };
}
export function encodeNumberOfQueuesAllocated(v: NumberOfQueuesAllocated): number {
  return pack(place(v.nsqa, 0, 16), place(v.ncqa, 16, 16));
}
export function decodeNumberOfQueuesAllocated(dw: number): NumberOfQueuesAllocated {
  return { nsqa: bits(dw, 0, 16), ncqa: bits(dw, 16, 16) };
}

// ---- 08h Interrupt Coalescing ----------------------------------------------------------------------

export interface InterruptCoalescing {
  /** Aggregation Threshold, completions, 0's based. */
  thr: number;
  /** Aggregation Time, 100 µs units (0 = no delay). */
  time: number;
}
export function encodeInterruptCoalescing(v: InterruptCoalescing): number {
  return pack(place(v.thr, 0, 8), place(v.time, 8, 8));
}
export function decodeInterruptCoalescing(dw: number): InterruptCoalescing {
  return { thr: bits(dw, 0, 8), time: bits(dw, 8, 8) };
}

// ---- 09h Interrupt Vector Configuration ------------------------------------------------------------

export interface InterruptVectorConfiguration {
  /** Interrupt Vector this setting applies to. */
  iv: number;
  /** Coalescing Disable. */
  cd: boolean;
}
export function encodeInterruptVectorConfiguration(v: InterruptVectorConfiguration): number {
  return pack(place(v.iv, 0, 16), flag(v.cd, 16));
}
export function decodeInterruptVectorConfiguration(dw: number): InterruptVectorConfiguration {
  return { iv: bits(dw, 0, 16), cd: bit(dw, 16) };
}

// ---- 0Ah Write Atomicity Normal --------------------------------------------------------------------

export interface WriteAtomicityNormal {
  /** Disable Normal: only AWUPF / NAWUPF apply. */
  dn: boolean;
}
export function encodeWriteAtomicityNormal(v: WriteAtomicityNormal): number {
  return flag(v.dn, 0);
}
export function decodeWriteAtomicityNormal(dw: number): WriteAtomicityNormal {
  return { dn: bit(dw, 0) };
}

// ---- 0Bh Asynchronous Event Configuration ----------------------------------------------------------

export interface AsynchronousEventConfiguration {
  /** SMART / Health Critical Warnings (bits 7:0, one per Critical Warning bit). */
  shcw: number;
  /** Namespace Attribute Notices (bit 8). */
  nan: boolean;
  /** Firmware Activation Notices (bit 9). */
  fan: boolean;
  /** Telemetry Log Notices (bit 10). */
  tln: boolean;
  /** ANA Change Notices (bit 11). */
  anacn: boolean;
  /** Predictable Latency Event Aggregate Log Change Notices (bit 12). */
  plealcn: boolean;
  /** LBA Status Information Notices (bit 13). */
  lsin: boolean;
  /** Endurance Group Event Aggregate Log Change Notices (bit 14). */
  egealcn: boolean;
  /** Normal NVM Subsystem Shutdown (bit 15). */
  nnsshdn: boolean;
  /** Discovery Log Page Change Notification (bit 31, fabrics). */
  dlpcn: boolean;
}
export const AEC_NAN = 1 << 8;
export const AEC_FAN = 1 << 9;
export function encodeAsynchronousEventConfiguration(v: AsynchronousEventConfiguration): number {
  return pack(
    place(v.shcw, 0, 8),
    flag(v.nan, 8),
    flag(v.fan, 9),
    flag(v.tln, 10),
    flag(v.anacn, 11),
    flag(v.plealcn, 12),
    flag(v.lsin, 13),
    flag(v.egealcn, 14),
    flag(v.nnsshdn, 15),
    flag(v.dlpcn, 31),
  );
}
export function decodeAsynchronousEventConfiguration(dw: number): AsynchronousEventConfiguration {
  return {
    shcw: bits(dw, 0, 8),
    nan: bit(dw, 8),
    fan: bit(dw, 9),
    tln: bit(dw, 10),
    anacn: bit(dw, 11),
    plealcn: bit(dw, 12),
    lsin: bit(dw, 13),
    egealcn: bit(dw, 14),
    nnsshdn: bit(dw, 15),
    dlpcn: bit(dw, 31),
  };
}

// ---- 21h Controller Data Queue (TP4159) ------------------------------------------------------------

/** Set Features 21h: CDW11 CDQID 15:0 + ETPT bit 31, CDW12 HP, CDW13 TPT. */
export interface ControllerDataQueueFeature {
  /** Controller Data Queue Identifier. */
  cdqid: number;
  /** Enable Tail Pointer Trigger. */
  etpt: boolean;
  /** Head Pointer (entry slot the host consumed up to). */
  hp: number;
  /** Tail Pointer Trigger (entry slot that triggers the CDQ tail pointer event). */
  tpt: number;
}
export function encodeSetControllerDataQueue(v: ControllerDataQueueFeature): CommandDwords {
  return dwords({
    cdw10: encodeFeaturesCdw10({ fid: FeatureId.ControllerDataQueue, sel: 0, sv: false }),
    cdw11: pack(place(v.cdqid, 0, 16), flag(v.etpt, 31)),
    cdw12: v.hp >>> 0,
    cdw13: v.tpt >>> 0,
  });
}
export function decodeSetControllerDataQueue(c: Partial<CommandDwords>): ControllerDataQueueFeature {
  const d = dwords(c);
  return { cdqid: bits(d.cdw11, 0, 16), etpt: bit(d.cdw11, 31), hp: d.cdw12, tpt: d.cdw13 };
}

/** Get Features 21h: CDW11 = CDQID; the 8-byte data returned is {HP u32 @0, TPT u32 @4}. */
export const CONTROLLER_DATA_QUEUE_FEATURE_BYTES = 8;
export interface ControllerDataQueueFeatureData {
  hp: number;
  tpt: number;
}
export function encodeControllerDataQueueFeatureData(
  v: ControllerDataQueueFeatureData,
  dst?: Uint8Array,
): Uint8Array {
  const out = target(dst, CONTROLLER_DATA_QUEUE_FEATURE_BYTES);
  const view = dataView(out);
  view.setUint32(0, v.hp >>> 0, true);
  view.setUint32(4, v.tpt >>> 0, true);
  return out;
}
export function decodeControllerDataQueueFeatureData(src: Uint8Array): ControllerDataQueueFeatureData {
  const view = dataView(fit(src, CONTROLLER_DATA_QUEUE_FEATURE_BYTES));
  return { hp: view.getUint32(0, true), tpt: view.getUint32(4, true) };
}

// ---- by FID ----------------------------------------------------------------------------------------

/** Value-dword codec of every single-dword feature, by FID (for generic save/restore and logs). */
export interface FeatureValueCodec<T> {
  encode(v: T): number;
  decode(dw: number): T;
}
export const featureValueCodecs = {
  [FeatureId.Arbitration]: { encode: encodeArbitration, decode: decodeArbitration },
  [FeatureId.PowerManagement]: { encode: encodePowerManagement, decode: decodePowerManagement },
  [FeatureId.TemperatureThreshold]: {
    encode: encodeTemperatureThreshold,
    decode: decodeTemperatureThreshold,
  },
  [FeatureId.ErrorRecovery]: { encode: encodeErrorRecovery, decode: decodeErrorRecovery },
  [FeatureId.VolatileWriteCache]: { encode: encodeVolatileWriteCache, decode: decodeVolatileWriteCache },
  [FeatureId.NumberOfQueues]: { encode: encodeNumberOfQueues, decode: decodeNumberOfQueues },
  [FeatureId.InterruptCoalescing]: { encode: encodeInterruptCoalescing, decode: decodeInterruptCoalescing },
  [FeatureId.InterruptVectorConfiguration]: {
    encode: encodeInterruptVectorConfiguration,
    decode: decodeInterruptVectorConfiguration,
  },
  [FeatureId.WriteAtomicityNormal]: {
    encode: encodeWriteAtomicityNormal,
    decode: decodeWriteAtomicityNormal,
  },
  [FeatureId.AsynchronousEventConfiguration]: {
    encode: encodeAsynchronousEventConfiguration,
    decode: decodeAsynchronousEventConfiguration,
  },
} as const satisfies Record<number, FeatureValueCodec<unknown>>;
