/**
 * DEVICE_FEATURE (16) envelope, analogous to `struct vfio_device_feature`:
 *
 *   argsz u32 · flags u32 (bits 0–15 feature index, 16 GET, 17 SET, 18 PROBE) · data
 *
 * Request argsz = largest reply payload the client takes. Reply: for SET and PROBE the request payload
 * echoed (data possibly adjusted by the device, e.g. DMA logging page size), argsz unchanged; for GET
 * the data appended and argsz = 8 + data length. If a GET reply does not fit argsz, the reply is the
 * 8-byte envelope alone carrying the needed argsz (same rule as REGION_INFO).
 *
 * The payloads of individual features (migration state, DMA logging) are not decoded here.
 */
import { DeviceFeatureFlag, Errno } from "./constants.ts";
import { type DecodeError, decodeError, isDecodeError, tooShort, viewOf } from "./wire.ts";

export const DEVICE_FEATURE_BYTES = 8;

const KNOWN_FLAGS =
  DeviceFeatureFlag.MASK | DeviceFeatureFlag.GET | DeviceFeatureFlag.SET | DeviceFeatureFlag.PROBE;

export interface DeviceFeaturePayload {
  argsz: number;
  flags: number;
  /** Bytes after the envelope (a view into the message). */
  data: Uint8Array;
}

export function featureIndex(flags: number): number {
  return flags & DeviceFeatureFlag.MASK;
}

export function encodeDeviceFeature(p: { argsz?: number; flags: number; data?: Uint8Array }): Uint8Array {
  const dataBytes = p.data?.byteLength ?? 0;
  const out = new Uint8Array(DEVICE_FEATURE_BYTES + dataBytes);
  const v = viewOf(out);
  v.setUint32(0, p.argsz ?? out.byteLength, true);
  v.setUint32(4, p.flags, true);
  if (p.data !== undefined) out.set(p.data, DEVICE_FEATURE_BYTES);
  return out;
}

/**
 * Request: payload ≥ 8, argsz ≥ 8; no flag bits above PROBE; at least one of GET/SET/PROBE; GET and
 * SET together only with PROBE. All failures EINVAL.
 */
export function decodeDeviceFeatureRequest(payload: Uint8Array): DeviceFeaturePayload | DecodeError {
  const p = decodeDeviceFeatureReply(payload);
  if (isDecodeError(p)) return p;
  if (p.argsz < DEVICE_FEATURE_BYTES) return decodeError(Errno.EINVAL, "device-feature-argsz");
  const ops = p.flags & (DeviceFeatureFlag.GET | DeviceFeatureFlag.SET | DeviceFeatureFlag.PROBE);
  if ((p.flags & ~KNOWN_FLAGS) !== 0 || ops === 0) return decodeError(Errno.EINVAL, "device-feature-flags");
  const getAndSet = DeviceFeatureFlag.GET | DeviceFeatureFlag.SET;
  if ((p.flags & getAndSet) === getAndSet && (p.flags & DeviceFeatureFlag.PROBE) === 0) {
    return decodeError(Errno.EINVAL, "device-feature-get-and-set");
  }
  return p;
}

/** Reply (or the envelope of any feature payload): payload ≥ 8. */
export function decodeDeviceFeatureReply(payload: Uint8Array): DeviceFeaturePayload | DecodeError {
  if (payload.byteLength < DEVICE_FEATURE_BYTES) return tooShort("device-feature");
  const v = viewOf(payload);
  return {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    data: payload.subarray(DEVICE_FEATURE_BYTES),
  };
}
