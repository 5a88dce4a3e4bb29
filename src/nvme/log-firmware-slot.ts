/**
 * Firmware Slot Information log page (LID 03h, 512 bytes), NVMe Base 2.1 Figure "Firmware Slot
 * Information Log Page": AFI u8 @0 (bits 2:0 active slot, bits 6:4 slot activated at next reset),
 * FRS1..FRS7 (8 ASCII bytes each) from byte 8. An empty or unsupported slot is all zero bytes.
 */
import { ascii, dataView, fit, target, u8 } from "./codec.ts";

export const FIRMWARE_SLOT_BYTES = 512;
export const FIRMWARE_SLOTS = 7;
export const FRS_OFFSET = 8;
export const FRS_BYTES = 8;

export interface FirmwareSlotInformation {
  /** Active Firmware Info (see `afi`). */
  afi: number;
  /** Firmware Revision for Slots 1–7; "" = empty slot (encoded as zeros). Decode returns all 7. */
  frs: string[];
}

/** AFI byte from the active slot (1–7) and the slot to activate at the next reset (0 = none). */
export function afi(activeSlot: number, nextResetSlot = 0): number {
  return (activeSlot & 0x7) | ((nextResetSlot & 0x7) << 4);
}
export function afiActiveSlot(afiByte: number): number {
  return afiByte & 0x7;
}
export function afiNextResetSlot(afiByte: number): number {
  return (afiByte >> 4) & 0x7;
}

const afiField = u8(0);
const frsField = (slot: number) => ascii(FRS_OFFSET + FRS_BYTES * slot, FRS_BYTES);

export function encodeFirmwareSlotInformation(v: FirmwareSlotInformation, dst?: Uint8Array): Uint8Array {
  if (v.frs.length > FIRMWARE_SLOTS)
    throw new RangeError(`${FIRMWARE_SLOTS} firmware slots, got ${v.frs.length}`);
  const out = target(dst, FIRMWARE_SLOT_BYTES);
  const view = dataView(out);
  afiField.write(view, 0, v.afi);
  v.frs.forEach((rev, i) => {
    if (rev !== "") frsField(i).write(view, 0, rev);
  });
  return out;
}

export function decodeFirmwareSlotInformation(src: Uint8Array): FirmwareSlotInformation {
  const view = dataView(fit(src, FIRMWARE_SLOT_BYTES));
  return {
    afi: afiField.read(view, 0),
    frs: Array.from({ length: FIRMWARE_SLOTS }, (_, i) => frsField(i).read(view, 0)),
  };
}
