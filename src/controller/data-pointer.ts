/**
 * Walks a command's Data Pointer (PRP1/PRP2 with PRP lists, or an SGL) into a list of guest-memory
 * segments (NVMe Base 2.1 §4.1.1 PRP, §4.1.2 SGL).
 *
 * The walker is reused across commands (no allocation per I/O): after `walkPrp`/`walkSgl` returns
 * `Status.Success`, segments `0 .. count-1` are `(regions[i], offsets[i], lengths[i])`. A segment
 * that continues the previous one in the same mapped range (the next page of a physically
 * contiguous buffer) extends it, so a contiguous buffer is one segment — one copy — however many
 * PRP entries describe it. PRP list entries and SGL descriptors are read straight from the mapped
 * range's DataView.
 *
 * PRP rules enforced: PRP1 offset must be dword aligned; PRP2 (when a plain entry) and every PRP list
 * entry must have offset 0 (memory-page aligned); a PRP list pointer may carry a dword-aligned offset;
 * the last entry of a full list page chains to the next list page. Violations → PRP Offset Invalid.
 * An address not inside the DMA map → Data Transfer Error.
 *
 * Remote segments: with `allowRemote` set (by the asynchronous transfer path, around one walk), a data
 * segment that is not in a direct range but lies inside one remote range (`Dma.findRemote`) is accepted:
 * `regions[i]` is then `REMOTE_SEGMENT` and `remotes[i]` the remote range. PRP list pages and SGL
 * segment lists are still read only from direct ranges.
 */
import type { Dma, DmaRegion, RemoteDmaRegion } from "../memory/dma.ts";
import { readU64AsNumber } from "../nvme/sqe.ts";
import { Status } from "../nvme/status.ts";

/** SGL descriptor types (byte 15 bits 7:4). */
export const SglType = { DataBlock: 0x0, BitBucket: 0x1, Segment: 0x2, LastSegment: 0x3 } as const;
/** Upper bound on descriptors walked per command, so a looping segment chain cannot hang us. */
const MAX_SGL_DESCRIPTORS = 4096;

/** Placeholder in `regions[i]` for a segment that lies in a remote range (no bytes behind it). */
export const REMOTE_SEGMENT: DmaRegion = Object.freeze({
  iova: 0,
  bytes: new Uint8Array(0),
  view: new DataView(new ArrayBuffer(0)),
  writable: false,
});

export class DataPointerWalker {
  count = 0;
  readonly regions: DmaRegion[] = [];
  readonly offsets: number[] = [];
  readonly lengths: number[] = [];
  /** Guest-physical address of each segment (for dirty logging). */
  readonly iovas: number[] = [];
  /** Accept data segments in remote ranges during the next walks (see the file head). Default false. */
  allowRemote = false;
  /** Segments of the last walk that lie in remote ranges. */
  remoteCount = 0;
  /** `remotes[i]` is meaningful only where `regions[i] === REMOTE_SEGMENT`. */
  readonly remotes: RemoteDmaRegion[] = [];

  constructor(private readonly dma: Dma) {}

  private push(iova: number, length: number, needWrite: boolean): boolean {
    const r = this.dma.find(iova, length);
    if (r === undefined || (needWrite && !r.writable)) {
      return this.allowRemote && this.pushRemote(iova, length, needWrite);
    }
    const last = this.count - 1;
    if (last >= 0 && this.regions[last] === r && this.iovas[last]! + this.lengths[last]! === iova) {
      this.lengths[last]! += length;
      return true;
    }
    const i = this.count++;
    this.regions[i] = r;
    this.offsets[i] = iova - r.iova;
    this.lengths[i] = length;
    this.iovas[i] = iova;
    return true;
  }

  private pushRemote(iova: number, length: number, needWrite: boolean): boolean {
    const r = this.dma.findRemote(iova, length);
    if (r === undefined || (needWrite && !r.writable)) return false;
    const last = this.count - 1;
    if (
      last >= 0 &&
      this.regions[last] === REMOTE_SEGMENT &&
      this.remotes[last] === r &&
      this.iovas[last]! + this.lengths[last]! === iova
    ) {
      this.lengths[last]! += length;
      return true;
    }
    const i = this.count++;
    this.regions[i] = REMOTE_SEGMENT;
    this.remotes[i] = r;
    this.offsets[i] = iova - r.iova;
    this.lengths[i] = length;
    this.iovas[i] = iova;
    this.remoteCount++;
    return true;
  }

  /**
   * @param lengthBytes transfer length (> 0)
   * @param pageBytes memory page size from CC.MPS
   * @param toGuest true when the controller writes guest memory (reads, Identify, logs)
   */
  walkPrp(prp1: number, prp2: number, lengthBytes: number, pageBytes: number, toGuest: boolean): number {
    this.count = 0;
    this.remoteCount = 0;
    // Offsets within a page use `addr & (pageBytes - 1)`, not `%`: addresses are integers up to 2^53
    // held as doubles, `&` keeps their low 32 bits exactly (ToInt32 is modulo 2^32), pageBytes is a
    // power of two dividing 2^32 — and a double `%` is a slow library call on the hot path.
    const pageMask = pageBytes - 1;
    if ((prp1 & 0x3) !== 0) return Status.PrpOffsetInvalid;
    const first = Math.min(lengthBytes, pageBytes - (prp1 & pageMask));
    if (!this.push(prp1, first, toGuest)) return Status.DataTransferError;
    let remaining = lengthBytes - first;
    if (remaining === 0) return Status.Success;
    if (remaining <= pageBytes) {
      if ((prp2 & pageMask) !== 0) return Status.PrpOffsetInvalid;
      return this.push(prp2, remaining, toGuest) ? Status.Success : Status.DataTransferError;
    }
    // PRP2 points to a PRP list.
    if ((prp2 & 0x3) !== 0 || (prp2 & 0x7) !== 0) return Status.PrpOffsetInvalid;
    let listIova = prp2;
    while (remaining > 0) {
      const entriesInPage = (pageBytes - (listIova & pageMask)) / 8;
      for (let i = 0; i < entriesInPage && remaining > 0; i++) {
        const entryIova = listIova + i * 8;
        const lr = this.dma.find(entryIova, 8);
        if (lr === undefined) return Status.DataTransferError;
        const e = readU64AsNumber(lr.view, entryIova - lr.iova);
        const isLastSlot = i === entriesInPage - 1;
        if (isLastSlot && remaining > pageBytes) {
          // Chain to the next PRP list page.
          if ((e & 0x7) !== 0) return Status.PrpOffsetInvalid;
          listIova = e;
          break;
        }
        if ((e & pageMask) !== 0) return Status.PrpOffsetInvalid;
        const n = Math.min(remaining, pageBytes);
        if (!this.push(e, n, toGuest)) return Status.DataTransferError;
        remaining -= n;
      }
    }
    return Status.Success;
  }

  /**
   * Walks an SGL whose first descriptor is the 16 bytes at `sqe[24..40)`.
   * Supported: Data Block, Segment, Last Segment (address type). Bit Bucket and keyed descriptors
   * → SGL Descriptor Type Invalid. Total data block length shorter than the transfer → Data SGL Length
   * Invalid; longer is allowed (excess ignored).
   */
  walkSgl(sqe: DataView, dptrAt: number, lengthBytes: number, toGuest: boolean): number {
    this.count = 0;
    this.remoteCount = 0;
    let remaining = lengthBytes;
    // Current descriptor source: the SQE first, then segment lists in guest memory.
    let addr = readU64AsNumber(sqe, dptrAt);
    let len = sqe.getUint32(dptrAt + 8, true);
    let id = sqe.getUint8(dptrAt + 15);
    let walked = 0;
    let segIova = 0;
    let segLeft = 0; // descriptors left in the current segment list
    let inLastSegment = false;
    for (;;) {
      if (++walked > MAX_SGL_DESCRIPTORS) return Status.InvalidNumberOfSglDescriptors;
      const type = id >>> 4;
      if ((id & 0xf) !== 0) return Status.SglDescriptorTypeInvalid; // only address subtype
      if (type === SglType.DataBlock) {
        if (remaining > 0 && len > 0) {
          const n = Math.min(len, remaining);
          if (!this.push(addr, n, toGuest)) return Status.DataTransferError;
          remaining -= n;
        }
      } else if (type === SglType.Segment || type === SglType.LastSegment) {
        if (inLastSegment) return Status.InvalidSglSegmentDescriptor;
        if (segLeft > 0) return Status.InvalidSglSegmentDescriptor; // a segment pointer must be the last in its list
        if (len === 0 || len % 16 !== 0) return Status.InvalidSglSegmentDescriptor;
        segIova = addr;
        segLeft = len / 16;
        inLastSegment = type === SglType.LastSegment;
      } else {
        return Status.SglDescriptorTypeInvalid;
      }
      if (remaining === 0 && segLeft === 0) break;
      if (segLeft === 0) break;
      const sr = this.dma.find(segIova, 16);
      if (sr === undefined) return Status.DataTransferError;
      const at = segIova - sr.iova;
      segIova += 16;
      segLeft--;
      addr = readU64AsNumber(sr.view, at);
      len = sr.view.getUint32(at + 8, true);
      id = sr.view.getUint8(at + 15);
      if (inLastSegment && id >>> 4 !== SglType.DataBlock) return Status.InvalidSglSegmentDescriptor;
    }
    return remaining === 0 ? Status.Success : Status.DataSglLengthInvalid;
  }
}
