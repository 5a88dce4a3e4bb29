/**
 * DEVICE_GET_REGION_INFO (5), REGION_READ (9), REGION_WRITE (10), REGION_WRITE_MULTI (15).
 *
 *   REGION_INFO  argsz u32 · flags u32 · index u32 · cap_offset u32 · size u64 · offset u64  (32 bytes)
 *                reply: the same + capability chain; each capability = id u16 · version u16 · next u32
 *                (`next` and `cap_offset` count from the start of the struct, 0 ends the chain) + body.
 *                Sparse mmap (id 1, version 1) body = nr_areas u32 · reserved u32 · {offset u64, size u64}×n
 *   REGION_READ  offset u64 · region u32 · count u32              reply: the same + `count` data bytes
 *   REGION_WRITE offset u64 · region u32 · count u32 · data        reply: offset · region · count
 *   WRITE_MULTI  wr_cnt u64 · wr_cnt × {offset u64 · region u32 · count u32 (≤ 8) · data[8]}
 *                reply: wr_cnt u64
 *
 * argsz rule for REGION_INFO: when the full reply (struct + capabilities) is larger than the request's
 * argsz, the reply is the 32-byte struct alone carrying the needed argsz (cap_offset 0, no fd); the
 * client retries with a larger argsz. argsz < 32 is refused (EINVAL). Requests may be longer than 32
 * bytes (SPDK sends argsz-sized requests); the excess is ignored.
 */
import { Errno, RegionCapId, RegionFlag, SPARSE_MMAP_CAP_VERSION } from "./constants.ts";
import { type DecodeError, decodeError, isDecodeError, readU64, tooShort, viewOf, writeU64 } from "./wire.ts";

export const REGION_INFO_BYTES = 32;
export const CAP_HEADER_BYTES = 8;
/** nr_areas u32 + reserved u32, before the areas. */
export const SPARSE_MMAP_FIXED_BYTES = 8;
export const SPARSE_MMAP_AREA_BYTES = 16;
/** offset u64 + region u32 + count u32. */
export const REGION_ACCESS_BYTES = 16;
export const WRITE_MULTI_COUNT_BYTES = 8;
export const WRITE_MULTI_ENTRY_BYTES = 24;
/** Largest write one WRITE_MULTI entry can carry. */
export const WRITE_MULTI_MAX_DATA_BYTES = 8;
/** Most capabilities a decoder follows in one chain (loop guard). */
export const MAX_REGION_CAPS = 16;

export interface SparseMmapArea {
  /** Offset inside the region, bytes. */
  offset: number;
  sizeBytes: number;
}

export type RegionCap =
  | { id: typeof RegionCapId.SPARSE_MMAP; version: number; areas: SparseMmapArea[] }
  /** Any other capability, body kept raw (after its 8-byte header). */
  | { id: number; version: number; body: Uint8Array };

export interface RegionInfoRequest {
  argsz: number;
  index: number;
}

export interface RegionInfo {
  argsz: number;
  /** `RegionFlag` bits. */
  flags: number;
  index: number;
  capOffset: number;
  sizeBytes: number;
  /** mmap offset of the region in its fd. */
  offset: number;
  caps: RegionCap[];
}

export function encodeRegionInfoRequest(index: number, argsz: number): Uint8Array {
  const out = new Uint8Array(REGION_INFO_BYTES);
  const v = viewOf(out);
  v.setUint32(0, argsz, true);
  v.setUint32(8, index, true);
  return out;
}

/** Request: payload ≥ 32 (EINVAL), argsz ≥ 32 (EINVAL). Only argsz and index are read. */
export function decodeRegionInfoRequest(payload: Uint8Array): RegionInfoRequest | DecodeError {
  if (payload.byteLength < REGION_INFO_BYTES) return tooShort("region-info");
  const v = viewOf(payload);
  const argsz = v.getUint32(0, true);
  if (argsz < REGION_INFO_BYTES) return decodeError(Errno.EINVAL, "region-info-argsz");
  return { argsz, index: v.getUint32(8, true) };
}

function capBytes(cap: RegionCap): number {
  if ("areas" in cap)
    return CAP_HEADER_BYTES + SPARSE_MMAP_FIXED_BYTES + cap.areas.length * SPARSE_MMAP_AREA_BYTES;
  return CAP_HEADER_BYTES + cap.body.byteLength;
}

/** Bytes of the full reply payload: struct + capabilities. */
export function regionInfoReplyBytes(caps: readonly RegionCap[]): number {
  let n = REGION_INFO_BYTES;
  for (const c of caps) n += capBytes(c);
  return n;
}

/**
 * Encodes a REGION_INFO reply for a client that offered `argszOffered`. The CAPS flag is set iff
 * `caps` is non-empty. Returns the payload and whether it was truncated (struct only, needed argsz).
 */
export function encodeRegionInfoReply(
  info: { flags: number; index: number; sizeBytes: number; offset: number; caps: readonly RegionCap[] },
  argszOffered: number,
): { payload: Uint8Array; argsz: number; truncated: boolean } {
  const needed = regionInfoReplyBytes(info.caps);
  const truncated = needed > argszOffered;
  const flags = info.caps.length > 0 ? info.flags | RegionFlag.CAPS : info.flags & ~RegionFlag.CAPS;
  const out = new Uint8Array(truncated ? REGION_INFO_BYTES : needed);
  const v = viewOf(out);
  v.setUint32(0, needed, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, info.index, true);
  // cap_offset names where the chain starts even in a truncated reply (CAPS set): QEMU's vfio-user
  // client refuses CAPS with a cap_offset below the struct size (EINVAL), libvfio-user sends 32 too.
  v.setUint32(12, info.caps.length === 0 ? 0 : REGION_INFO_BYTES, true);
  writeU64(v, 16, info.sizeBytes);
  writeU64(v, 24, info.offset);
  if (!truncated) {
    let at = REGION_INFO_BYTES;
    info.caps.forEach((cap, i) => {
      const len = capBytes(cap);
      const next = i === info.caps.length - 1 ? 0 : at + len;
      v.setUint16(at, cap.id, true);
      v.setUint16(at + 2, cap.version, true);
      v.setUint32(at + 4, next, true);
      if ("areas" in cap) {
        v.setUint32(at + 8, cap.areas.length, true);
        cap.areas.forEach((a, j) => {
          const p = at + CAP_HEADER_BYTES + SPARSE_MMAP_FIXED_BYTES + j * SPARSE_MMAP_AREA_BYTES;
          writeU64(v, p, a.offset);
          writeU64(v, p + 8, a.sizeBytes);
        });
      } else {
        out.set(cap.body, at + CAP_HEADER_BYTES);
      }
      at += len;
    });
  }
  return { payload: out, argsz: needed, truncated };
}

/** A sparse-mmap capability for `areas`. */
export function sparseMmapCap(areas: readonly SparseMmapArea[]): RegionCap {
  return {
    id: RegionCapId.SPARSE_MMAP,
    version: SPARSE_MMAP_CAP_VERSION,
    areas: areas.map((a) => ({ ...a })),
  };
}

/**
 * Decodes a REGION_INFO reply. When argsz exceeds the bytes present (a truncated reply), `caps` is
 * empty. A capability chain that leaves the payload, goes backwards or loops → EINVAL.
 */
export function decodeRegionInfoReply(payload: Uint8Array): RegionInfo | DecodeError {
  if (payload.byteLength < REGION_INFO_BYTES) return tooShort("region-info-reply");
  const v = viewOf(payload);
  const sizeBytes = readU64(v, 16);
  const offset = readU64(v, 24);
  if (sizeBytes === undefined || offset === undefined)
    return decodeError(Errno.EINVAL, "region-info-u64-range");
  const info: RegionInfo = {
    argsz: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    index: v.getUint32(8, true),
    capOffset: v.getUint32(12, true),
    sizeBytes,
    offset,
    caps: [],
  };
  if (info.argsz > payload.byteLength || (info.flags & RegionFlag.CAPS) === 0 || info.capOffset === 0)
    return info;
  let at = info.capOffset;
  for (let n = 0; at !== 0; n++) {
    if (n >= MAX_REGION_CAPS || at < REGION_INFO_BYTES || at + CAP_HEADER_BYTES > payload.byteLength) {
      return decodeError(Errno.EINVAL, "region-info-cap-chain");
    }
    const id = v.getUint16(at, true);
    const version = v.getUint16(at + 2, true);
    const next = v.getUint32(at + 4, true);
    if (next !== 0 && next < at + CAP_HEADER_BYTES) return decodeError(Errno.EINVAL, "region-info-cap-chain");
    const end = next === 0 ? payload.byteLength : next;
    if (end > payload.byteLength) return decodeError(Errno.EINVAL, "region-info-cap-chain");
    if (id === RegionCapId.SPARSE_MMAP) {
      if (at + CAP_HEADER_BYTES + SPARSE_MMAP_FIXED_BYTES > end)
        return decodeError(Errno.EINVAL, "sparse-mmap-cap");
      const nrAreas = v.getUint32(at + 8, true);
      const first = at + CAP_HEADER_BYTES + SPARSE_MMAP_FIXED_BYTES;
      if (nrAreas > (end - first) / SPARSE_MMAP_AREA_BYTES)
        return decodeError(Errno.EINVAL, "sparse-mmap-cap");
      const areas: SparseMmapArea[] = [];
      for (let i = 0; i < nrAreas; i++) {
        const o = readU64(v, first + i * SPARSE_MMAP_AREA_BYTES);
        const s = readU64(v, first + i * SPARSE_MMAP_AREA_BYTES + 8);
        if (o === undefined || s === undefined) return decodeError(Errno.EINVAL, "sparse-mmap-cap");
        areas.push({ offset: o, sizeBytes: s });
      }
      info.caps.push({ id: RegionCapId.SPARSE_MMAP, version, areas });
    } else {
      info.caps.push({ id, version, body: payload.slice(at + CAP_HEADER_BYTES, end) });
    }
    at = next;
  }
  return info;
}

export interface RegionAccess {
  /** Offset inside the region, bytes. */
  offset: number;
  region: number;
  count: number;
}

/** REGION_READ request, REGION_WRITE reply, or (with data) REGION_READ reply / REGION_WRITE request. */
export function encodeRegionAccess(a: RegionAccess, data?: Uint8Array): Uint8Array {
  const out = new Uint8Array(REGION_ACCESS_BYTES + (data?.byteLength ?? 0));
  const v = viewOf(out);
  writeU64(v, 0, a.offset);
  v.setUint32(8, a.region, true);
  v.setUint32(12, a.count, true);
  if (data !== undefined) out.set(data, REGION_ACCESS_BYTES);
  return out;
}

function decodeAccess(payload: Uint8Array, what: string): RegionAccess | DecodeError {
  if (payload.byteLength < REGION_ACCESS_BYTES) return tooShort(what);
  const v = viewOf(payload);
  const offset = readU64(v, 0);
  if (offset === undefined) return decodeError(Errno.EINVAL, `${what}-offset-range`);
  return { offset, region: v.getUint32(8, true), count: v.getUint32(12, true) };
}

/** REGION_READ request: exactly 16 bytes (EINVAL otherwise). */
export function decodeRegionReadRequest(payload: Uint8Array): RegionAccess | DecodeError {
  if (payload.byteLength > REGION_ACCESS_BYTES)
    return decodeError(Errno.EINVAL, "region-read-trailing-bytes");
  return decodeAccess(payload, "region-read");
}

/** REGION_WRITE request: 16 bytes + exactly `count` data bytes (EINVAL otherwise). */
export function decodeRegionWriteRequest(
  payload: Uint8Array,
): (RegionAccess & { data: Uint8Array }) | DecodeError {
  const a = decodeAccess(payload, "region-write");
  if (isDecodeError(a)) return a;
  if (payload.byteLength - REGION_ACCESS_BYTES !== a.count)
    return decodeError(Errno.EINVAL, "region-write-count");
  return { ...a, data: payload.subarray(REGION_ACCESS_BYTES) };
}

/** REGION_READ reply: 16 bytes + `count` data bytes (EINVAL otherwise). */
export function decodeRegionReadReply(
  payload: Uint8Array,
): (RegionAccess & { data: Uint8Array }) | DecodeError {
  const a = decodeAccess(payload, "region-read-reply");
  if (isDecodeError(a)) return a;
  if (payload.byteLength - REGION_ACCESS_BYTES !== a.count)
    return decodeError(Errno.EINVAL, "region-read-reply-count");
  return { ...a, data: payload.subarray(REGION_ACCESS_BYTES) };
}

/** REGION_WRITE reply: 16 bytes. */
export function decodeRegionWriteReply(payload: Uint8Array): RegionAccess | DecodeError {
  return decodeAccess(payload, "region-write-reply");
}

export interface WriteMultiEntry extends RegionAccess {
  /** `count` bytes (≤ 8). */
  data: Uint8Array;
}

export function encodeWriteMulti(entries: readonly WriteMultiEntry[]): Uint8Array {
  const out = new Uint8Array(WRITE_MULTI_COUNT_BYTES + entries.length * WRITE_MULTI_ENTRY_BYTES);
  const v = viewOf(out);
  writeU64(v, 0, entries.length);
  entries.forEach((e, i) => {
    const at = WRITE_MULTI_COUNT_BYTES + i * WRITE_MULTI_ENTRY_BYTES;
    writeU64(v, at, e.offset);
    v.setUint32(at + 8, e.region, true);
    v.setUint32(at + 12, e.count, true);
    out.set(e.data.subarray(0, WRITE_MULTI_MAX_DATA_BYTES), at + 16);
  });
  return out;
}

/**
 * WRITE_MULTI request: wr_cnt ≥ 1, payload exactly 8 + wr_cnt × 24 bytes, every count 1..8 (EINVAL
 * otherwise).
 */
export function decodeWriteMulti(payload: Uint8Array): WriteMultiEntry[] | DecodeError {
  if (payload.byteLength < WRITE_MULTI_COUNT_BYTES) return tooShort("write-multi");
  const v = viewOf(payload);
  const n = readU64(v, 0);
  if (
    n === undefined ||
    n === 0 ||
    payload.byteLength !== WRITE_MULTI_COUNT_BYTES + n * WRITE_MULTI_ENTRY_BYTES
  ) {
    return decodeError(Errno.EINVAL, "write-multi-count");
  }
  const entries: WriteMultiEntry[] = [];
  for (let i = 0; i < n; i++) {
    const at = WRITE_MULTI_COUNT_BYTES + i * WRITE_MULTI_ENTRY_BYTES;
    const offset = readU64(v, at);
    const count = v.getUint32(at + 12, true);
    if (offset === undefined) return decodeError(Errno.EINVAL, "write-multi-offset-range");
    if (count === 0 || count > WRITE_MULTI_MAX_DATA_BYTES)
      return decodeError(Errno.EINVAL, "write-multi-entry-count");
    entries.push({
      offset,
      region: v.getUint32(at + 8, true),
      count,
      data: payload.subarray(at + 16, at + 16 + count),
    });
  }
  return entries;
}

export function encodeWriteMultiReply(wrCnt: number): Uint8Array {
  const out = new Uint8Array(WRITE_MULTI_COUNT_BYTES);
  writeU64(viewOf(out), 0, wrCnt);
  return out;
}

export function decodeWriteMultiReply(payload: Uint8Array): number | DecodeError {
  if (payload.byteLength < WRITE_MULTI_COUNT_BYTES) return tooShort("write-multi-reply");
  return readU64(viewOf(payload), 0) ?? decodeError(Errno.EINVAL, "write-multi-reply-range");
}
