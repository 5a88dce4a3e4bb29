/**
 * Supported Controller State Formats data structure (Identify CNS 20h, TP4159), layout as in the
 * 2025 Linux RFC (reference §4.2; not checked against the spec text): NV u8 @0 (number of
 * NVMe-defined controller state versions), NUUID u8 @1 (number of vendor-specific format UUIDs),
 * NV × u16 version IDs from byte 2, then NUUID × 16-byte UUIDs immediately after. The Identify data
 * buffer is 4096 bytes.
 *
 * CSVI / CSUUIDI in Migration Send / Receive are 1-based indices into these lists (0 = none).
 */
import { dataView, fit, target } from "./codec.ts";

export const SUPPORTED_CONTROLLER_STATE_FORMATS_BYTES = 4096;
export const CONTROLLER_STATE_UUID_BYTES = 16;

export interface SupportedControllerStateFormats {
  /** NVMe Controller State version identifiers (NV = length). */
  versions: number[];
  /** Vendor Specific Controller State UUIDs, 16 bytes each (NUUID = length). */
  uuids: Uint8Array[];
}

export function supportedControllerStateFormatsBytes(v: SupportedControllerStateFormats): number {
  return 2 + 2 * v.versions.length + CONTROLLER_STATE_UUID_BYTES * v.uuids.length;
}

/** Throws when a list exceeds 255 entries, a UUID is not 16 bytes, or the whole does not fit 4096 bytes. */
export function encodeSupportedControllerStateFormats(
  v: SupportedControllerStateFormats,
  dst?: Uint8Array,
): Uint8Array {
  if (v.versions.length > 0xff || v.uuids.length > 0xff) throw new RangeError("NV / NUUID exceed 255");
  if (supportedControllerStateFormatsBytes(v) > SUPPORTED_CONTROLLER_STATE_FORMATS_BYTES) {
    throw new RangeError("supported controller state formats do not fit 4096 bytes");
  }
  const out = target(dst, SUPPORTED_CONTROLLER_STATE_FORMATS_BYTES);
  const view = dataView(out);
  view.setUint8(0, v.versions.length);
  view.setUint8(1, v.uuids.length);
  v.versions.forEach((ver, i) => {
    view.setUint16(2 + 2 * i, ver, true);
  });
  const uuidBase = 2 + 2 * v.versions.length;
  v.uuids.forEach((u, i) => {
    if (u.byteLength !== CONTROLLER_STATE_UUID_BYTES) throw new RangeError(`UUID of ${u.byteLength} bytes`);
    out.set(u, uuidBase + CONTROLLER_STATE_UUID_BYTES * i);
  });
  return out;
}

/** NV versions and NUUID UUIDs; entries that would lie past the end of `src` are dropped. */
export function decodeSupportedControllerStateFormats(src: Uint8Array): SupportedControllerStateFormats {
  const b = fit(src, 2);
  const view = dataView(b);
  const nv = view.getUint8(0);
  const nuuid = view.getUint8(1);
  const versions: number[] = [];
  for (let i = 0; i < nv && 2 + 2 * i + 2 <= b.byteLength; i++)
    versions.push(view.getUint16(2 + 2 * i, true));
  const uuidBase = 2 + 2 * nv;
  const uuids: Uint8Array[] = [];
  for (let i = 0; i < nuuid; i++) {
    const at = uuidBase + CONTROLLER_STATE_UUID_BYTES * i;
    if (at + CONTROLLER_STATE_UUID_BYTES > b.byteLength) break;
    uuids.push(b.slice(at, at + CONTROLLER_STATE_UUID_BYTES));
  }
  return { versions, uuids };
}
