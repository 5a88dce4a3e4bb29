/**
 * Read, Write and Compare whose data buffer lies (partly) in remote guest memory: ranges the device
 * reaches only asynchronously (`Dma.mapRemote` — over vfio-user, a DMA_MAP without an fd, served by
 * DMA_READ / DMA_WRITE messages to the client).
 *
 * The synchronous handlers in `read-write.ts` / `compare.ts` walk the data pointer first; only when
 * that walk fails with Data Transfer Error and the DMA map holds remote ranges do they come here. The
 * data pointer is walked again with remote data segments allowed; the segments are copied out of the
 * shared walker (the next command reuses it), the command returns `PENDING`, and it completes through
 * `completeLater` once every segment transfer has settled — never earlier, so no transfer of this
 * command still runs when the host sees its completion:
 *
 *   Read     store → one buffer; direct segments copied (and dirty-logged) at once, remote segments
 *            written with `Dma.writeRemote` (dirty-logged when they settle) → Success
 *   Write    direct segments copied at once, remote segments read with `Dma.readRemote` → the whole
 *            buffer into the store, changed LBAs reported, flushed first with FUA or the volatile write
 *            cache disabled → Success (acknowledged only once the data is in the store)
 *   Compare  buffer gathered as for Write → compared with the store → Success / Compare Failure
 *
 * The changed LBAs of a Write are reported (`lbaWritten`, user-data logging) when its data reaches the
 * store, before its completion: the command still counts as outstanding then, so a Suspend — which
 * posts the UDMQ's ESA 3 only once the target is idle — always logs it first. A Write whose queue was
 * deleted (or whose controller was reset) while its data was on the way changes nothing.
 *
 * Any remote transfer that fails (error reply, timeout, client gone, range unmapped meanwhile) ends
 * the command with Data Transfer Error (event `command.data-transfer-error`); a Write then changes
 * nothing in the store.
 *
 * Not supported (Data Transfer Error, as for unmapped memory): PRP list pages and SGL segment lists
 * in remote memory. Submission / completion queues in remote memory are refused at queue creation,
 * as before. Other commands with data (Dataset Management, admin commands) still need direct memory.
 */
import type { DmaRegion, RemoteDmaRegion } from "../../memory/dma.ts";
import { Status } from "../../nvme/status.ts";
import { type NvmeController, PENDING } from "../controller.ts";
import { REMOTE_SEGMENT } from "../data-pointer.ts";
import { ControllerEvent, emitEvent } from "../events.ts";
import type { Namespace } from "../namespace.ts";
import type { SubmissionQueue } from "../queues.ts";

/** CDW12 bit 30: Force Unit Access. */
const FUA = 1 << 30;

/** One data segment, copied out of the walker. */
interface Segment {
  iova: number;
  lengthBytes: number;
  /** Byte offset of the segment in the command's data buffer. */
  at: number;
  /** Direct memory: the region and the offset into it. */
  region: DmaRegion | undefined;
  offset: number;
  /** Remote memory. */
  remote: RemoteDmaRegion | undefined;
}

/** What the current command needs to complete later (the SQE copy is overwritten by the next one). */
interface Pending {
  c: NvmeController;
  sq: SubmissionQueue;
  cid: number;
  opcode: number;
}

/**
 * True when a synchronous handler's walk status may be cured by the remote path: the walk failed with
 * Data Transfer Error and the DMA map holds remote ranges.
 */
export function mayBeRemote(c: NvmeController, walkStatus: number): boolean {
  return walkStatus === Status.DataTransferError && c.dma.hasRemote;
}

/** Read with remote segments; returns `PENDING` or a status (walk failure). */
export function remoteRead(
  c: NvmeController,
  sq: SubmissionQueue,
  ns: Namespace,
  slba: number,
  bytes: number,
): number {
  const segs = walkSegments(c, bytes, true);
  if (typeof segs === "number") return segs;
  const data = new Uint8Array(bytes);
  ns.store.read(slba * ns.lbaBytes, data);
  const p = pendingOf(c, sq);
  const writes: Promise<void>[] = [];
  for (const s of segs) {
    const part = data.subarray(s.at, s.at + s.lengthBytes);
    if (s.remote !== undefined) {
      writes.push(c.dma.writeRemote(s.iova, part));
    } else {
      s.region!.bytes.set(part, s.offset);
      c.dma.logWrite(s.iova, s.lengthBytes);
    }
  }
  settleAll(writes)
    .then((failure) => {
      if (failure !== undefined) return failTransfer(p, failure);
      c.stats.hostReadCommands++;
      c.stats.dataUnitsReadBytes += bytes;
      c.completeLater(sq, p.cid, Status.Success);
    })
    .catch((e: unknown) => failInternal(p, e));
  return PENDING;
}

/** Write with remote segments; returns `PENDING` or a status (walk failure). */
export function remoteWrite(
  c: NvmeController,
  sq: SubmissionQueue,
  ns: Namespace,
  slba: number,
  nlb: number,
): number {
  const bytes = nlb * ns.lbaBytes;
  const segs = walkSegments(c, bytes, false);
  if (typeof segs === "number") return segs;
  const p = pendingOf(c, sq);
  const fua = (c.sqe.getUint32(48, true) & FUA) !== 0;
  gather(c, segs, bytes)
    .then((data) => {
      if (!(data instanceof Uint8Array)) return failTransfer(p, data.failure);
      // Dropped meanwhile (SQ deleted, controller reset): no completion will be posted, so nothing may
      // change either — a Suspend waiting for the target to go idle has already ended logging.
      if (dropped(p)) return;
      ns.store.write(slba * ns.lbaBytes, data);
      c.stats.hostWriteCommands++;
      c.stats.dataUnitsWrittenBytes += bytes;
      c.lbaWritten(ns.nsid, slba, nlb, false);
      if (!fua && (c.features.volatileWriteCache & 1) !== 0) {
        c.completeLater(sq, p.cid, Status.Success);
        return;
      }
      ns.store.flush().then(
        () => c.completeLater(sq, p.cid, Status.Success),
        () => c.completeLater(sq, p.cid, Status.InternalError),
      );
    })
    .catch((e: unknown) => failInternal(p, e));
  return PENDING;
}

/** Compare with remote segments; returns `PENDING` or a status (walk failure). */
export function remoteCompare(
  c: NvmeController,
  sq: SubmissionQueue,
  ns: Namespace,
  slba: number,
  bytes: number,
): number {
  const segs = walkSegments(c, bytes, false);
  if (typeof segs === "number") return segs;
  const p = pendingOf(c, sq);
  gather(c, segs, bytes)
    .then((host) => {
      if (!(host instanceof Uint8Array)) return failTransfer(p, host.failure);
      const stored = new Uint8Array(bytes);
      ns.store.read(slba * ns.lbaBytes, stored);
      let st: number = Status.Success;
      for (let i = 0; i < bytes; i++) {
        if (stored[i] !== host[i]) {
          st = Status.CompareFailure;
          break;
        }
      }
      c.completeLater(sq, p.cid, st);
    })
    .catch((e: unknown) => failInternal(p, e));
  return PENDING;
}

/**
 * Walks the current command's data pointer with remote segments allowed and copies the segments out
 * of the walker. Returns the segments or the walk's status.
 */
function walkSegments(c: NvmeController, bytes: number, toGuest: boolean): Segment[] | number {
  const w = c.walker;
  w.allowRemote = true;
  let st: number;
  try {
    st = c.walkDptr(bytes, toGuest);
  } finally {
    w.allowRemote = false;
  }
  if (st !== Status.Success) return st;
  const segs: Segment[] = [];
  let at = 0;
  for (let i = 0; i < w.count; i++) {
    const remote = w.regions[i] === REMOTE_SEGMENT;
    const len = w.lengths[i]!;
    segs.push({
      iova: w.iovas[i]!,
      lengthBytes: len,
      at,
      region: remote ? undefined : w.regions[i],
      offset: w.offsets[i]!,
      remote: remote ? w.remotes[i] : undefined,
    });
    at += len;
  }
  return segs;
}

/**
 * The host's data of `segs` in one buffer: direct segments copied now, remote ones when they arrive.
 * Resolves (never rejects) once every transfer settled: the buffer, or the first failure.
 */
function gather(
  c: NvmeController,
  segs: Segment[],
  bytes: number,
): Promise<Uint8Array | { failure: unknown }> {
  const data = new Uint8Array(bytes);
  const reads: Promise<void>[] = [];
  for (const s of segs) {
    if (s.remote !== undefined) {
      reads.push(c.dma.readRemote(s.iova, s.lengthBytes).then((d) => data.set(d, s.at)));
    } else {
      data.set(s.region!.bytes.subarray(s.offset, s.offset + s.lengthBytes), s.at);
    }
  }
  return settleAll(reads).then((failure) => (failure === undefined ? data : { failure }));
}

/** Resolves once all `ps` settled: undefined if all fulfilled, else the first rejection reason. */
function settleAll(ps: Promise<unknown>[]): Promise<unknown> {
  return Promise.allSettled(ps).then((rs) => {
    for (const r of rs) if (r.status === "rejected") return r.reason ?? new Error("remote transfer failed");
    return undefined;
  });
}

/**
 * True when the command's queue is gone (deleted, or the controller reset) since it was fetched: it no
 * longer counts as outstanding and `completeLater` would drop its completion.
 */
function dropped(p: Pending): boolean {
  if (p.c.sqs[p.sq.sqid] === p.sq) return false;
  emitEvent(ControllerEvent.commandFailed, p.c.cntlid, {
    sqid: p.sq.sqid,
    cid: p.cid,
    opcode: p.opcode,
    status: Status.AbortedSqDeletion,
    detail: "queue deleted or controller reset before the data arrived; store unchanged",
  });
  return true;
}

function pendingOf(c: NvmeController, sq: SubmissionQueue): Pending {
  return { c, sq, cid: c.sqe.getUint16(2, true), opcode: c.sqe.getUint8(0) };
}

/** Our own failure after the transfers (e.g. the store threw): Internal Error, never a hang. */
function failInternal(p: Pending, e: unknown): void {
  emitEvent(ControllerEvent.commandFailed, p.c.cntlid, {
    sqid: p.sq.sqid,
    cid: p.cid,
    opcode: p.opcode,
    status: Status.InternalError,
    detail: String(e),
  });
  p.c.completeLater(p.sq, p.cid, Status.InternalError);
}

function failTransfer(p: Pending, failure: unknown): void {
  emitEvent(ControllerEvent.dataTransferError, p.c.cntlid, {
    sqid: p.sq.sqid,
    cid: p.cid,
    opcode: p.opcode,
    detail: failure instanceof Error ? failure.message : String(failure),
  });
  p.c.completeLater(p.sq, p.cid, Status.DataTransferError);
}
