/**
 * DEVICE_GET_INFO (4), `struct vfio_device_info`:
 *
 *   argsz u32 · flags u32 (RESET 1, PCI 2) · num_regions u32 · num_irqs u32     (16 bytes)
 *
 * Request: argsz = largest reply payload the client takes, other fields 0. Reply: argsz 16.
 * The reply is fixed-size, so argsz < 16 is refused (EINVAL) rather than truncated.
 */
import { Errno } from "./constants.ts";
import { type DecodeError, decodeError, tooShort, viewOf } from "./wire.ts";

export const DEVICE_INFO_BYTES = 16;

export interface DeviceInfoPayload {
  argsz: number;
  /** `DeviceInfoFlag` bits. */
  flags: number;
  numRegions: number;
  numIrqs: number;
}

export function encodeDeviceInfo(p: DeviceInfoPayload): Uint8Array {
  const out = new Uint8Array(DEVICE_INFO_BYTES);
  const v = viewOf(out);
  v.setUint32(0, p.argsz, true);
  v.setUint32(4, p.flags, true);
  v.setUint32(8, p.numRegions, true);
  v.setUint32(12, p.numIrqs, true);
  return out;
}

/** The request the client sends: argsz 16, rest zero. */
export function encodeDeviceInfoRequest(argsz = DEVICE_INFO_BYTES): Uint8Array {
  return encodeDeviceInfo({ argsz, flags: 0, numRegions: 0, numIrqs: 0 });
}

/** Decodes a request or a reply. Payload < 16 → EINVAL; argsz < 16 → EINVAL. */
export function decodeDeviceInfo(payload: Uint8Array): DeviceInfoPayload | DecodeError {
  if (payload.byteLength < DEVICE_INFO_BYTES) return tooShort("device-info");
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  if (argsz < DEVICE_INFO_BYTES) return decodeError(Errno.EINVAL, "device-info-argsz");
  return {
    argsz,
    flags: v.getUint32(4, true),
    numRegions: v.getUint32(8, true),
    numIrqs: v.getUint32(12, true),
  };
}
