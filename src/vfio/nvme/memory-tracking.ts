/**
 * VFIO DMA logging for an NVMe function, done by the controlling function: DMA_LOGGING_START →
 * Track Send "Track Memory Changes" (TACT 1) over the ranges, REPORT → Track Receive of each range's
 * dirty-granule bitmap (read-and-clear on the device) accumulated here, then the requested window is
 * returned and cleared here — so a report of part of a range never loses the marks of the rest.
 * Ranges beyond the controller's descriptor limit are merged (smallest gaps first) until they fit.
 */
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { statusName } from "../../nvme/status.ts";
import { encodeTrackMemoryRanges, encodeTrackReceive, encodeTrackSend } from "../../nvme/track-commands.ts";
import type { DmaRange } from "../backend.ts";
import { dmaBitmapBytes } from "../dma-logging.ts";
import { Errno } from "../states.ts";
import type { AdminChannel } from "./admin-channel.ts";

/** Track Memory Range descriptors a controller accepts (Identify CMMRTD of nvmig controllers). */
export const MAX_TRACKED_RANGES = 16;
/** Bitmap bytes per Track Receive (one command), within MDTS. */
const RECEIVE_CHUNK_BYTES = 256 * 1024;

interface Tracked {
  iova: number;
  length: number;
  /** Local accumulated marks, one bit per granule (LSB first); a whole number of dwords. */
  bits: Uint8Array;
  /** The same marks by 32 (to skip clean stretches a dword at a time). */
  words: Uint32Array;
}

export function mergeRanges(
  ranges: readonly { iova: number; length: number }[],
  max: number,
): { iova: number; length: number }[] {
  const rs = [...ranges].sort((a, b) => a.iova - b.iova).map((r) => ({ ...r }));
  while (rs.length > max) {
    let best = 0;
    let gap = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < rs.length; i++) {
      const g = rs[i + 1]!.iova - (rs[i]!.iova + rs[i]!.length);
      if (g < gap) {
        gap = g;
        best = i;
      }
    }
    const a = rs[best]!;
    const b = rs[best + 1]!;
    rs.splice(best, 2, { iova: a.iova, length: b.iova + b.length - a.iova });
  }
  return rs;
}

export class MemoryTracking {
  private tracked: Tracked[] = [];
  private granuleLog2 = 12;

  constructor(
    private readonly channel: AdminChannel,
    private readonly cntlid: number,
  ) {}

  async start(
    ranges: readonly DmaRange[],
    pageSize: bigint,
  ): Promise<{ pageSize: bigint } | { errno: number }> {
    const g = Math.max(12, Math.min(21, Math.log2(Number(pageSize))));
    const rs = mergeRanges(
      ranges.map((r) => ({ iova: Number(r.iova), length: Number(r.length) })),
      MAX_TRACKED_RANGES,
    );
    const r = await this.channel.submit({
      opc: AdminOpcode.TrackSend,
      ...encodeTrackSend({ sel: 1, tact: 1, cntlid: this.cntlid, rmrtg: g, nranges: rs.length }),
      dataOut: encodeTrackMemoryRanges(rs),
    });
    if (r.status !== 0) return { errno: Errno.EIO };
    this.granuleLog2 = g;
    this.tracked = rs.map((x) => {
      const bits = new Uint8Array(Math.ceil(Math.ceil(x.length / 2 ** g) / 32) * 4);
      return { ...x, bits, words: new Uint32Array(bits.buffer, 0, bits.byteLength / 4) };
    });
    return { pageSize: BigInt(2 ** g) };
  }

  async stop(): Promise<void> {
    if (this.tracked.length === 0) return;
    this.tracked = [];
    await this.channel.submit({
      opc: AdminOpcode.TrackSend,
      ...encodeTrackSend({ sel: 1, tact: 0, cntlid: this.cntlid, rmrtg: this.granuleLog2, nranges: 0 }),
    });
  }

  /** Pulls every range's device bitmap (clearing it there) into the local marks. */
  private async pull(): Promise<void> {
    for (let ridx = 0; ridx < this.tracked.length; ridx++) {
      const t = this.tracked[ridx]!;
      for (let at = 0; at < t.bits.byteLength; at += RECEIVE_CHUNK_BYTES) {
        const n = Math.min(RECEIVE_CHUNK_BYTES, t.bits.byteLength - at);
        const r = await this.channel.submit({
          opc: AdminOpcode.TrackReceive,
          ...encodeTrackReceive({ sel: 0, cntlid: this.cntlid, ridx, offset: at / 4, numd: n / 4 - 1 }),
          dataInBytes: n,
        });
        if (r.status !== 0 || r.data === undefined) throw new Error(`Track Receive: ${statusName(r.status)}`);
        // OR in, skipping clean dwords (n and `at` are multiples of 4).
        const d = r.data;
        for (let i = 0; i + 4 <= n; i += 4) {
          if ((d[i]! | d[i + 1]! | d[i + 2]! | d[i + 3]!) === 0) continue;
          for (let b = i; b < i + 4; b++) t.bits[at + b]! |= d[b]!;
        }
      }
    }
  }

  async reportAndClear(
    iova: bigint,
    length: bigint,
    pageSize: bigint,
  ): Promise<Uint8Array | { errno: number }> {
    if (this.tracked.length === 0) return { errno: Errno.EINVAL };
    try {
      await this.pull();
    } catch {
      return { errno: Errno.EIO };
    }
    const out = new Uint8Array(Number(dmaBitmapBytes(length, pageSize)));
    const lo = Number(iova);
    const hi = lo + Number(length);
    const ps = Number(pageSize);
    const g = 2 ** this.granuleLog2;
    for (const t of this.tracked) {
      const from = Math.max(lo, t.iova);
      const to = Math.min(hi, t.iova + t.length);
      if (from >= to) continue;
      const gEnd = Math.ceil((to - t.iova) / g);
      for (let gi = Math.floor((from - t.iova) / g); gi < gEnd; gi++) {
        // A clean dword of marks: 32 granules at once.
        if ((gi & 31) === 0 && gi + 32 <= gEnd && t.words[gi >>> 5] === 0) {
          gi += 31;
          continue;
        }
        if (((t.bits[gi >>> 3]! >> (gi & 7)) & 1) === 0) continue;
        const gLo = t.iova + gi * g;
        const gHi = gLo + g;
        // Mark every requested page this granule touches.
        const p0 = Math.floor((Math.max(gLo, lo) - lo) / ps);
        const p1 = Math.floor((Math.min(gHi, hi) - 1 - lo) / ps);
        for (let p = p0; p <= p1; p++) out[(p >>> 6) * 8 + ((p & 63) >>> 3)]! |= 1 << (p & 7);
        // Clear only granules wholly inside the window.
        if (gLo >= lo && gHi <= hi) t.bits[gi >>> 3]! &= ~(1 << (gi & 7));
      }
    }
    return out;
  }
}
