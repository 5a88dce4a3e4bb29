/**
 * MIG_DATA_READ (17) and MIG_DATA_WRITE (18): the migration data stream of VFIO migration v2, carried
 * in messages instead of the kernel's data_fd.
 *
 *   MIG_DATA_READ  request argsz u32 (≥ 8 + size) · size u32
 *                  reply   argsz u32 (= 8 + returned size) · size u32 · data   (size < asked: no more now)
 *   MIG_DATA_WRITE request argsz u32 · size u32 · data (exactly `size` bytes)   reply: empty
 */
import { Errno } from "./constants.ts";
import { type DecodeError, decodeError, isDecodeError, tooShort, viewOf } from "./wire.ts";

export const MIG_DATA_BYTES = 8;

export interface MigDataPayload {
  argsz: number;
  sizeBytes: number;
  /** Data bytes (empty in a MIG_DATA_READ request). */
  data: Uint8Array;
}

/** MIG_DATA_READ request (no data), MIG_DATA_READ reply or MIG_DATA_WRITE request (with data). */
export function encodeMigData(p: { argsz?: number; sizeBytes: number; data?: Uint8Array }): Uint8Array {
  const dataBytes = p.data?.byteLength ?? 0;
  const out = new Uint8Array(MIG_DATA_BYTES + dataBytes);
  const v = viewOf(out);
  v.setUint32(0, p.argsz ?? MIG_DATA_BYTES + p.sizeBytes, true);
  v.setUint32(4, p.sizeBytes, true);
  if (p.data !== undefined) out.set(p.data, MIG_DATA_BYTES);
  return out;
}

function decodeFixed(payload: Uint8Array, what: string): MigDataPayload | DecodeError {
  if (payload.byteLength < MIG_DATA_BYTES) return tooShort(what);
  const v = viewOf(payload);
  return {
    argsz: v.getUint32(0, true),
    sizeBytes: v.getUint32(4, true),
    data: payload.subarray(MIG_DATA_BYTES),
  };
}

/** MIG_DATA_READ request: exactly 8 bytes, argsz ≥ 8 + size (EINVAL otherwise). */
export function decodeMigDataReadRequest(payload: Uint8Array): MigDataPayload | DecodeError {
  const p = decodeFixed(payload, "mig-data-read");
  if (isDecodeError(p)) return p;
  if (p.data.byteLength !== 0) return decodeError(Errno.EINVAL, "mig-data-read-trailing-bytes");
  if (p.argsz < MIG_DATA_BYTES + p.sizeBytes) return decodeError(Errno.EINVAL, "mig-data-read-argsz");
  return p;
}

/** MIG_DATA_READ reply: size ≤ data bytes present; `data` is cut to `size`. */
export function decodeMigDataReadReply(payload: Uint8Array): MigDataPayload | DecodeError {
  const p = decodeFixed(payload, "mig-data-read-reply");
  if (isDecodeError(p)) return p;
  if (p.data.byteLength < p.sizeBytes) return decodeError(Errno.EINVAL, "mig-data-read-reply-size");
  return { ...p, data: p.data.subarray(0, p.sizeBytes) };
}

/** MIG_DATA_WRITE request: data exactly `size` bytes (EINVAL otherwise). */
export function decodeMigDataWriteRequest(payload: Uint8Array): MigDataPayload | DecodeError {
  const p = decodeFixed(payload, "mig-data-write");
  if (isDecodeError(p)) return p;
  if (p.data.byteLength !== p.sizeBytes) return decodeError(Errno.EINVAL, "mig-data-write-size");
  return p;
}
