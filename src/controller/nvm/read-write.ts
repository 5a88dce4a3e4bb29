/**
 * Read (02h) and Write (01h) — NVM Command Set Specification 1.1 §3.2.4 / §3.2.6.
 *
 * Data moves directly between the namespace's `BlockStore` and the guest-memory segments of the data
 * pointer. A Write completes only after its data is in the store; with the volatile write cache
 * disabled, or with FUA, it completes after the store is flushed.
 *
 * A data pointer with segments in remote memory (fd-less vfio-user maps) fails the synchronous walk
 * with Data Transfer Error; then, if remote ranges are mapped, `remote-transfer.ts` takes the command
 * over and completes it later. The direct path is unchanged.
 */
import { Status } from "../../nvme/status.ts";
import { type NvmeController, PENDING } from "../controller.ts";
import type { Namespace } from "../namespace.ts";
import type { SubmissionQueue } from "../queues.ts";
import { decodeLbaRange } from "./lba-range.ts";
import { mayBeRemote, remoteRead, remoteWrite } from "./remote-transfer.ts";

/** CDW12 bit 30: Force Unit Access. */
const FUA = 1 << 30;

export function read(c: NvmeController, sq: SubmissionQueue, ns: Namespace): number {
  const r = decodeLbaRange(c, ns);
  if (typeof r === "number") return r;
  const bytes = r.nlb * ns.lbaBytes;
  if (bytes > c.mdtsBytes) return Status.InvalidField;
  const st = c.walkDptr(bytes, true);
  if (st !== Status.Success) return mayBeRemote(c, st) ? remoteRead(c, sq, ns, r.slba, bytes) : st;
  const w = c.walker;
  const store = ns.store;
  let pos = r.slba * ns.lbaBytes;
  for (let i = 0; i < w.count; i++) {
    const off = w.offsets[i]!;
    const len = w.lengths[i]!;
    // `readInto` spares a view of guest memory per segment (one allocation fewer per command).
    if (store.readInto !== undefined) store.readInto(pos, w.regions[i]!.bytes, off, len);
    else store.read(pos, w.regions[i]!.bytes.subarray(off, off + len));
    c.dma.logWrite(w.iovas[i]!, len);
    pos += len;
  }
  c.stats.hostReadCommands++;
  c.stats.dataUnitsReadBytes += bytes;
  return Status.Success;
}

export function write(c: NvmeController, sq: SubmissionQueue, ns: Namespace): number {
  const r = decodeLbaRange(c, ns);
  if (typeof r === "number") return r;
  const bytes = r.nlb * ns.lbaBytes;
  if (bytes > c.mdtsBytes) return Status.InvalidField;
  const st = c.walkDptr(bytes, false);
  if (st !== Status.Success) return mayBeRemote(c, st) ? remoteWrite(c, sq, ns, r.slba, r.nlb) : st;
  const w = c.walker;
  let pos = r.slba * ns.lbaBytes;
  for (let i = 0; i < w.count; i++) {
    const off = w.offsets[i]!;
    ns.store.write(pos, w.regions[i]!.bytes.subarray(off, off + w.lengths[i]!));
    pos += w.lengths[i]!;
  }
  c.stats.hostWriteCommands++;
  c.stats.dataUnitsWrittenBytes += bytes;
  c.lbaWritten(ns.nsid, r.slba, r.nlb, false);
  const fua = (c.sqe.getUint32(48, true) & FUA) !== 0;
  if (fua || (c.features.volatileWriteCache & 1) === 0) return completeAfterFlush(c, sq, ns);
  return Status.Success;
}

/** Completes the current command once `ns.store.flush()` resolves. */
export function completeAfterFlush(c: NvmeController, sq: SubmissionQueue, ns: Namespace): number {
  const cid = c.sqe.getUint16(2, true);
  ns.store.flush().then(
    () => c.completeLater(sq, cid, Status.Success),
    () => c.completeLater(sq, cid, Status.InternalError),
  );
  return PENDING;
}
