/**
 * Intel live-migration vendor profile (Dec 2022 RFC, reference §2.3): five admin commands sent to the
 * PF's admin queue, naming the VF by a 1-based VF index (= VFN of the Secondary Controller List).
 *
 *   0xC4 Query Data Size  CDW10[15:0] VF index             CQE DW0 = state size, bytes
 *   0xC8 Suspend          CDW10[15:0] VF index
 *   0xCC Resume           CDW10[15:0] VF index
 *   0xD2 Save Data        CDW10[15:0] VF index, PRP1/PRP2  (controller → host, size from 0xC4)
 *   0xD5 Load Data        CDW10[15:0] VF index, CDW11 size in bytes, PRP1/PRP2 (host → controller)
 *
 * Capability: Identify Controller vendor-specific byte 3072 (`vs[0]`): 1 = supported, 0 = not.
 */
import { bits, type CommandDwords, dwords, place } from "./codec.ts";

/** Value of Identify Controller vs[0] when the profile is supported. */
export const INTEL_LM_SUPPORTED = 1;
/** Offset of the capability byte within the vendor-specific area (byte 3072 of Identify Controller). */
export const INTEL_LM_VS_FLAG_OFFSET = 0;
/** Largest state the Linux RFC's resume path accepted, bytes (256 KiB). */
export const INTEL_LM_MAX_STATE_BYTES = 256 * 1024;

export interface IntelMigrationFields {
  /** VF index (1-based). */
  vfIndex: number;
  /** Load Data only: size of the state, bytes (CDW11). */
  sizeBytes?: number;
}

export function encodeIntelMigration(f: IntelMigrationFields): CommandDwords {
  return dwords({ cdw10: place(f.vfIndex, 0, 16), cdw11: f.sizeBytes ?? 0 });
}

/** `sizeBytes` is CDW11 as read; it is meaningful for Load Data (0xD5) only. */
export function decodeIntelMigration(c: Partial<CommandDwords>): Required<IntelMigrationFields> {
  const d = dwords(c);
  return { vfIndex: bits(d.cdw10, 0, 16), sizeBytes: d.cdw11 };
}

/** Query Data Size (0xC4) completion DW0: the state size in bytes. */
export function encodeIntelQueryDataSizeDw0(sizeBytes: number): number {
  return sizeBytes >>> 0;
}
export function decodeIntelQueryDataSizeDw0(dw0: number): number {
  return dw0 >>> 0;
}

/** True when an Identify Controller vendor-specific area advertises the profile. */
export function intelLiveMigrationSupported(vs: Uint8Array): boolean {
  return vs[INTEL_LM_VS_FLAG_OFFSET] === INTEL_LM_SUPPORTED;
}
