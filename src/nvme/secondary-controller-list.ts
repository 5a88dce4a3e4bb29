/**
 * Secondary Controller List (Identify CNS 15h, 4096 bytes), NVMe Base 2.1 Figures "Secondary
 * Controller List" and "Secondary Controller Entry" (reference §4.12): NUMID u8 @0, 31 reserved
 * bytes, then up to 127 entries of 32 bytes from byte 32.
 *
 * The controlling function finds a controlled function's CNTLID here: the entry whose VFN is the VF
 * number (1-based) gives SCID.
 */
import { dataView, fit, type Layout, readLayout, target, u8, u16, writeLayout } from "./codec.ts";

export const SECONDARY_CONTROLLER_LIST_BYTES = 4096;
export const SECONDARY_CONTROLLER_ENTRY_BYTES = 32;
export const SECONDARY_CONTROLLER_LIST_MAX = 127;
/** Byte offset of the first entry. */
export const SECONDARY_CONTROLLER_ENTRIES_OFFSET = 32;

export interface SecondaryControllerEntry {
  /** Secondary Controller Identifier (its CNTLID). */
  scid: number;
  /** Primary Controller Identifier. */
  pcid: number;
  /** Secondary Controller State: bit 0 = 1 online (SCS_ONLINE). */
  scs: number;
  /** Virtual Function Number (1-based; 0 = not a VF). */
  vfn: number;
  /** Number of VQ Flexible Resources Assigned. */
  nvq: number;
  /** Number of VI Flexible Resources Assigned. */
  nvi: number;
}

export const SCS_ONLINE = 1 << 0;

const entryLayout: Layout<SecondaryControllerEntry> = {
  scid: u16(0),
  pcid: u16(2),
  scs: u8(4),
  vfn: u16(8),
  nvq: u16(10),
  nvi: u16(12),
};

/** NUMID = `entries.length`; throws beyond 127 entries. */
export function encodeSecondaryControllerList(
  entries: readonly SecondaryControllerEntry[],
  dst?: Uint8Array,
): Uint8Array {
  if (entries.length > SECONDARY_CONTROLLER_LIST_MAX) {
    throw new RangeError(`a secondary controller list holds ${SECONDARY_CONTROLLER_LIST_MAX} entries`);
  }
  const out = target(dst, SECONDARY_CONTROLLER_LIST_BYTES);
  const v = dataView(out);
  v.setUint8(0, entries.length);
  entries.forEach((e, i) => {
    writeLayout(
      entryLayout,
      e,
      v,
      SECONDARY_CONTROLLER_ENTRIES_OFFSET + SECONDARY_CONTROLLER_ENTRY_BYTES * i,
    );
  });
  return out;
}

/** NUMID entries (at most 127, whatever NUMID says). */
export function decodeSecondaryControllerList(src: Uint8Array): SecondaryControllerEntry[] {
  const v = dataView(fit(src, SECONDARY_CONTROLLER_LIST_BYTES));
  const n = Math.min(v.getUint8(0), SECONDARY_CONTROLLER_LIST_MAX);
  return Array.from({ length: n }, (_, i) =>
    readLayout(entryLayout, v, SECONDARY_CONTROLLER_ENTRIES_OFFSET + SECONDARY_CONTROLLER_ENTRY_BYTES * i),
  );
}
