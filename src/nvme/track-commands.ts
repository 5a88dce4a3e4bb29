/**
 * TP4159 Track Send (admin 3Dh) and Track Receive (admin 3Eh) command fields.
 *
 * Track Send SEL 0 "Log User Data Changes" is public (reference §4.8): MOS[3:0] = LACT (0 stop,
 * 1 start logging), CDW11[15:0] = CDQID of the User Data Migration Queue.
 *
 * The public layouts of Track Send SEL 1 "Track Memory Changes" and of Track Receive are incomplete,
 * so nvmig DEFINES its own, in the spirit of the spec (host memory written by a controller's DMA is
 * tracked at a granularity over host-given ranges, and read back as a dirty bitmap):
 *
 *   Track Send SEL 1 Track Memory Changes (data host → controller: Track Memory Ranges list)
 *     CDW10 SEL 7:0 = 1, MOS[3:0] = TACT (0 stop tracking, 1 start tracking)
 *     CDW11[15:0] CNTLID of the controller whose DMA writes are tracked
 *     CDW12[7:0]  RMRTG: tracking granularity, log2 bytes (≥ 12; within Identify MINMRTG..MAXMRTG)
 *     CDW13       NRANGES: number of 16-byte Track Memory Range entries in the data (start only)
 *     Data        NRANGES × { IOVA u64 @0, LENGTH u64 @8 } — both multiples of 2^RMRTG, LENGTH > 0
 *   Track Receive SEL 0 Get Memory Changes (data controller → host: a slice of one range's bitmap)
 *     CDW10 SEL 7:0 = 0
 *     CDW11[15:0] CNTLID
 *     CDW12       RIDX: 0-based index of the range in the list given at start
 *     CDW13       OFFSET into the range's bitmap, dwords
 *     CDW15       NUMD, 0's based
 *     Bitmap      bit i (byte ⌊i/8⌋, bit i mod 8, LSB first) = granule i of the range (bytes
 *                 IOVA + i·2^RMRTG …) was written since it was last returned. Its size is
 *                 ⌈granules / 32⌉ dwords; bits past the last granule and dwords past the end read 0.
 *                 Read-and-clear: the controller clears exactly the bits it returns.
 *
 *   host (controlling admin SQ)                             controller
 *   Track Send SEL 1 TACT 1, CNTLID, RMRTG, ranges ──────►  starts marking granules written by CNTLID
 *   Track Receive SEL 0 CNTLID, RIDX, OFFSET, NUMD ──────►  returns + clears that bitmap slice
 *   … repeat per range until a pass returns no set bit …
 *   Track Send SEL 1 TACT 0, CNTLID ──────────────────►     stops tracking, forgets the ranges
 *
 * Compatibility rule: the SEL 0 Track Send layout is TP4159's; everything marked nvmig-defined above
 * is advertised only through Identify TRATTR.THMCS of an nvmig controller. Should the spec publish a
 * different layout, it becomes a new profile; this one is not changed in place. Undefined SEL values
 * decode to an error value.
 */
import {
  bits,
  type CodecResult,
  type CommandDwords,
  dataView,
  dwords,
  pack,
  place,
  target,
} from "./codec.ts";
import { readU64AsNumber, writeU64FromNumber } from "./sqe.ts";

export const TrackSendSel = { LogUserDataChanges: 0, TrackMemoryChanges: 1 } as const;
export const TrackReceiveSel = { GetMemoryChanges: 0 } as const;
/** Logging Action (Track Send SEL 0, MOS[3:0]). */
export const LoggingAction = { StopLogging: 0, StartLogging: 1 } as const;
/** Tracking Action (Track Send SEL 1, MOS[3:0]; nvmig-defined). */
export const TrackingAction = { StopTracking: 0, StartTracking: 1 } as const;
/** Smallest tracking granularity, log2 bytes (4 KiB). */
export const TRACK_MIN_GRANULARITY_LOG2 = 12;
export const TRACK_MEMORY_RANGE_BYTES = 16;

export interface TrackSendLogUserDataChanges {
  sel: typeof TrackSendSel.LogUserDataChanges;
  /** Logging Action (LoggingAction). */
  lact: number;
  /** CDQID of the User Data Migration Queue. */
  cdqid: number;
}

export interface TrackSendTrackMemoryChanges {
  sel: typeof TrackSendSel.TrackMemoryChanges;
  /** Tracking Action (TrackingAction). */
  tact: number;
  cntlid: number;
  /** Tracking granularity, log2 bytes. */
  rmrtg: number;
  /** Number of Track Memory Range entries in the data. */
  nranges: number;
}

export type TrackSend = TrackSendLogUserDataChanges | TrackSendTrackMemoryChanges;

export interface TrackReceiveGetMemoryChanges {
  sel: typeof TrackReceiveSel.GetMemoryChanges;
  cntlid: number;
  /** Range index. */
  ridx: number;
  /** Offset into the range's bitmap, dwords. */
  offset: number;
  /** Number of dwords, 0's based. */
  numd: number;
}

export type TrackReceive = TrackReceiveGetMemoryChanges;

export function encodeTrackSend(f: TrackSend): CommandDwords {
  switch (f.sel) {
    case TrackSendSel.LogUserDataChanges:
      return dwords({ cdw10: pack(place(f.sel, 0, 8), place(f.lact, 16, 4)), cdw11: place(f.cdqid, 0, 16) });
    case TrackSendSel.TrackMemoryChanges:
      return dwords({
        cdw10: pack(place(f.sel, 0, 8), place(f.tact, 16, 4)),
        cdw11: place(f.cntlid, 0, 16),
        cdw12: place(f.rmrtg, 0, 8),
        cdw13: f.nranges,
      });
  }
}

export function decodeTrackSend(c: Partial<CommandDwords>): CodecResult<TrackSend, "invalid-sel"> {
  const d = dwords(c);
  const sel = bits(d.cdw10, 0, 8);
  switch (sel) {
    case TrackSendSel.LogUserDataChanges:
      return { ok: true, value: { sel, lact: bits(d.cdw10, 16, 4), cdqid: bits(d.cdw11, 0, 16) } };
    case TrackSendSel.TrackMemoryChanges:
      return {
        ok: true,
        value: {
          sel,
          tact: bits(d.cdw10, 16, 4),
          cntlid: bits(d.cdw11, 0, 16),
          rmrtg: bits(d.cdw12, 0, 8),
          nranges: d.cdw13,
        },
      };
    default:
      return { ok: false, error: "invalid-sel", detail: `Track Send SEL ${sel}` };
  }
}

export function encodeTrackReceive(f: TrackReceive): CommandDwords {
  return dwords({
    cdw10: place(f.sel, 0, 8),
    cdw11: place(f.cntlid, 0, 16),
    cdw12: f.ridx,
    cdw13: f.offset,
    cdw15: f.numd,
  });
}

export function decodeTrackReceive(c: Partial<CommandDwords>): CodecResult<TrackReceive, "invalid-sel"> {
  const d = dwords(c);
  const sel = bits(d.cdw10, 0, 8);
  if (sel !== TrackReceiveSel.GetMemoryChanges) {
    return { ok: false, error: "invalid-sel", detail: `Track Receive SEL ${sel}` };
  }
  return {
    ok: true,
    value: { sel, cntlid: bits(d.cdw11, 0, 16), ridx: d.cdw12, offset: d.cdw13, numd: d.cdw15 },
  };
}

// ---- Track Memory Ranges list (nvmig-defined) ------------------------------------------------------

export interface TrackMemoryRange {
  /** Start address (IOVA / guest-physical), bytes; exact below 2^53. */
  iova: number;
  /** Length, bytes. */
  length: number;
}

export function encodeTrackMemoryRanges(ranges: readonly TrackMemoryRange[], dst?: Uint8Array): Uint8Array {
  const out = target(dst, ranges.length * TRACK_MEMORY_RANGE_BYTES);
  const view = dataView(out);
  ranges.forEach((r, i) => {
    writeU64FromNumber(view, i * TRACK_MEMORY_RANGE_BYTES, r.iova);
    writeU64FromNumber(view, i * TRACK_MEMORY_RANGE_BYTES + 8, r.length);
  });
  return out;
}

/** Up to `count` entries; entries past the end of `src` are not returned. */
export function decodeTrackMemoryRanges(src: Uint8Array, count: number): TrackMemoryRange[] {
  const view = dataView(src);
  const n = Math.min(count, Math.floor(src.byteLength / TRACK_MEMORY_RANGE_BYTES));
  return Array.from({ length: n }, (_, i) => ({
    iova: readU64AsNumber(view, i * TRACK_MEMORY_RANGE_BYTES),
    length: readU64AsNumber(view, i * TRACK_MEMORY_RANGE_BYTES + 8),
  }));
}

// ---- dirty bitmap (nvmig-defined) ------------------------------------------------------------------

/** Granules of 2^rmrtg bytes covering `lengthBytes`. */
export function trackGranules(lengthBytes: number, rmrtg: number): number {
  return Math.ceil(lengthBytes / 2 ** rmrtg);
}

/** Size of a range's dirty bitmap, bytes (whole dwords). */
export function trackBitmapBytes(lengthBytes: number, rmrtg: number): number {
  return Math.ceil(trackGranules(lengthBytes, rmrtg) / 32) * 4;
}

export function bitmapGet(bitmap: Uint8Array, granule: number): boolean {
  return (((bitmap[granule >>> 3] ?? 0) >> (granule & 7)) & 1) === 1;
}

export function bitmapSet(bitmap: Uint8Array, granule: number): void {
  const i = granule >>> 3;
  if (i < bitmap.byteLength) bitmap[i] = (bitmap[i] ?? 0) | (1 << (granule & 7));
}

/** Indices of the set bits of a bitmap slice whose first bit is granule `firstGranule`. */
export function bitmapSetGranules(bitmap: Uint8Array, firstGranule = 0): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.byteLength; i++) {
    const byte = bitmap[i] ?? 0;
    if (byte === 0) continue;
    for (let b = 0; b < 8; b++) if ((byte >> b) & 1) out.push(firstGranule + i * 8 + b);
  }
  return out;
}
