/**
 * DMA_MAP (2), DMA_UNMAP (3), DMA_READ (11, server → client), DMA_WRITE (12, server → client).
 *
 *   DMA_MAP   argsz u32 (=32, the request size) · flags u32 (READ 1, WRITE 2) · offset u64 (file offset
 *             in the fd sent with the message) · address u64 (IOVA) · size u64        reply: empty
 *   DMA_UNMAP argsz u32 · flags u32 (UNMAP_ALL 2) · address u64 · size u64           reply: the request
 *   DMA_READ  address u64 · count u64                  reply: address u64 · count u64 · data
 *   DMA_WRITE address u64 · count u64 · data           reply: address u64 · count (u64; the spec table
 *             says 4 bytes — replies of 12 or 16 bytes, or a bare header, are all accepted)
 *
 * 64-bit values above 2^53 − 1 are refused with EINVAL (not representable here).
 */
import { DmaMapFlag, DmaUnmapFlag, Errno } from "./constants.ts";
import { type DecodeError, decodeError, isDecodeError, readU64, tooShort, viewOf, writeU64 } from "./wire.ts";

export const DMA_MAP_BYTES = 32;
export const DMA_UNMAP_BYTES = 24;
/** address u64 + count u64, the fixed part of DMA_READ/DMA_WRITE requests and replies. */
export const DMA_ACCESS_BYTES = 16;

export interface DmaMapRequest {
  argsz: number;
  /** `DmaMapFlag` bits. */
  flags: number;
  /** Offset of the range in the fd sent with the message; 0 without an fd. */
  offset: number;
  /** IOVA of the first byte. */
  address: number;
  sizeBytes: number;
}

export function encodeDmaMap(r: {
  flags: number;
  offset: number;
  address: number;
  sizeBytes: number;
}): Uint8Array {
  const out = new Uint8Array(DMA_MAP_BYTES);
  const v = viewOf(out);
  v.setUint32(0, DMA_MAP_BYTES, true);
  v.setUint32(4, r.flags, true);
  writeU64(v, 8, r.offset);
  writeU64(v, 16, r.address);
  writeU64(v, 24, r.sizeBytes);
  return out;
}

/**
 * Decodes and validates a DMA_MAP request: payload and argsz ≥ 32 (EINVAL), only READ/WRITE flag
 * bits and at least one of them (EINVAL), size > 0 and address + size representable (EINVAL).
 */
export function decodeDmaMap(payload: Uint8Array): DmaMapRequest | DecodeError {
  if (payload.byteLength < DMA_MAP_BYTES) return tooShort("dma-map");
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  if (argsz < DMA_MAP_BYTES) return decodeError(Errno.EINVAL, "dma-map-argsz");
  const flags = v.getUint32(4, true);
  const known = DmaMapFlag.READ | DmaMapFlag.WRITE;
  if ((flags & ~known) !== 0 || (flags & known) === 0) return decodeError(Errno.EINVAL, "dma-map-flags");
  const offset = readU64(v, 8);
  const address = readU64(v, 16);
  const sizeBytes = readU64(v, 24);
  if (offset === undefined || address === undefined || sizeBytes === undefined) {
    return decodeError(Errno.EINVAL, "dma-map-u64-range");
  }
  if (sizeBytes === 0) return decodeError(Errno.EINVAL, "dma-map-size-zero");
  if (!Number.isSafeInteger(address + sizeBytes) || !Number.isSafeInteger(offset + sizeBytes)) {
    return decodeError(Errno.EINVAL, "dma-map-u64-range");
  }
  return { argsz, flags, offset, address, sizeBytes };
}

export interface DmaUnmapRequest {
  argsz: number;
  /** `DmaUnmapFlag` bits. */
  flags: number;
  address: number;
  sizeBytes: number;
}

export function encodeDmaUnmap(r: {
  argsz?: number;
  flags: number;
  address: number;
  sizeBytes: number;
}): Uint8Array {
  const out = new Uint8Array(DMA_UNMAP_BYTES);
  const v = viewOf(out);
  v.setUint32(0, r.argsz ?? DMA_UNMAP_BYTES, true);
  v.setUint32(4, r.flags, true);
  writeU64(v, 8, r.address);
  writeU64(v, 16, r.sizeBytes);
  return out;
}

/**
 * Decodes and validates a DMA_UNMAP request (also used for its reply, which echoes the request).
 * payload < 24 or argsz < 24 → EINVAL; GET_DIRTY_BITMAP → ENOTSUP (dirty logging goes through
 * DEVICE_FEATURE); other unknown flags → EINVAL; UNMAP_ALL needs address = size = 0, a single unmap
 * needs size > 0 (EINVAL).
 */
export function decodeDmaUnmap(payload: Uint8Array): DmaUnmapRequest | DecodeError {
  if (payload.byteLength < DMA_UNMAP_BYTES) return tooShort("dma-unmap");
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  if (argsz < DMA_UNMAP_BYTES) return decodeError(Errno.EINVAL, "dma-unmap-argsz");
  const flags = v.getUint32(4, true);
  if ((flags & DmaUnmapFlag.GET_DIRTY_BITMAP) !== 0)
    return decodeError(Errno.ENOTSUP, "dma-unmap-dirty-bitmap");
  if ((flags & ~DmaUnmapFlag.UNMAP_ALL) !== 0) return decodeError(Errno.EINVAL, "dma-unmap-flags");
  const address = readU64(v, 8);
  const sizeBytes = readU64(v, 16);
  if (address === undefined || sizeBytes === undefined)
    return decodeError(Errno.EINVAL, "dma-unmap-u64-range");
  if ((flags & DmaUnmapFlag.UNMAP_ALL) !== 0) {
    if (address !== 0 || sizeBytes !== 0) return decodeError(Errno.EINVAL, "dma-unmap-all-range");
  } else if (sizeBytes === 0) {
    return decodeError(Errno.EINVAL, "dma-unmap-size-zero");
  }
  return { argsz, flags, address, sizeBytes };
}

export interface DmaAccess {
  address: number;
  count: number;
}

/** DMA_READ request, or the fixed part of either reply. */
export function encodeDmaAccess(address: number, count: number, data?: Uint8Array): Uint8Array {
  const out = new Uint8Array(DMA_ACCESS_BYTES + (data?.byteLength ?? 0));
  const v = viewOf(out);
  writeU64(v, 0, address);
  writeU64(v, 8, count);
  if (data !== undefined) out.set(data, DMA_ACCESS_BYTES);
  return out;
}

/** DMA_WRITE request: address, count = data length, data. */
export function encodeDmaWriteRequest(address: number, data: Uint8Array): Uint8Array {
  return encodeDmaAccess(address, data.byteLength, data);
}

/** DMA_READ request (client side): exactly 16 bytes. */
export function decodeDmaReadRequest(payload: Uint8Array): DmaAccess | DecodeError {
  if (payload.byteLength < DMA_ACCESS_BYTES) return tooShort("dma-read");
  if (payload.byteLength > DMA_ACCESS_BYTES) return decodeError(Errno.EINVAL, "dma-read-trailing-bytes");
  return decodeAccess(viewOf(payload), "dma-read");
}

/** DMA_WRITE request (client side): the data must be exactly `count` bytes. */
export function decodeDmaWriteRequest(payload: Uint8Array): (DmaAccess & { data: Uint8Array }) | DecodeError {
  if (payload.byteLength < DMA_ACCESS_BYTES) return tooShort("dma-write");
  const a = decodeAccess(viewOf(payload), "dma-write");
  if (isDecodeError(a)) return a;
  if (payload.byteLength - DMA_ACCESS_BYTES !== a.count) return decodeError(Errno.EINVAL, "dma-write-count");
  return { ...a, data: payload.subarray(DMA_ACCESS_BYTES) };
}

/** DMA_READ reply (server side): at least `count` data bytes after the 16-byte fixed part. */
export function decodeDmaReadReply(payload: Uint8Array): (DmaAccess & { data: Uint8Array }) | DecodeError {
  if (payload.byteLength < DMA_ACCESS_BYTES) return tooShort("dma-read-reply");
  const a = decodeAccess(viewOf(payload), "dma-read-reply");
  if (isDecodeError(a)) return a;
  if (payload.byteLength - DMA_ACCESS_BYTES < a.count)
    return decodeError(Errno.EINVAL, "dma-read-reply-count");
  return { ...a, data: payload.subarray(DMA_ACCESS_BYTES, DMA_ACCESS_BYTES + a.count) };
}

/**
 * DMA_WRITE reply (server side), parsed leniently: a bare header gives `{}`; 12 bytes carry a u32
 * count; 16 or more a u64 count.
 */
export function decodeDmaWriteReply(payload: Uint8Array): Partial<DmaAccess> | DecodeError {
  if (payload.byteLength === 0) return {};
  if (payload.byteLength < 12) return tooShort("dma-write-reply");
  const v = viewOf(payload);
  const address = readU64(v, 0);
  const count = payload.byteLength >= 16 ? readU64(v, 8) : v.getUint32(8, true);
  if (address === undefined || count === undefined)
    return decodeError(Errno.EINVAL, "dma-write-reply-u64-range");
  return { address, count };
}

function decodeAccess(v: DataView, what: string): DmaAccess | DecodeError {
  const address = readU64(v, 0);
  const count = readU64(v, 8);
  if (address === undefined || count === undefined) return decodeError(Errno.EINVAL, `${what}-u64-range`);
  return { address, count };
}
