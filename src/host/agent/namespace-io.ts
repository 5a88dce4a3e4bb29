/**
 * Namespace data by LBA ranges through the controlling function's block I/O (`BlockChannel`: NVM
 * Read / Write SQEs on the PF's I/O queues), in commands of at most `IO_CHUNK_BYTES`. Ranges are
 * checked against the namespace size before any I/O, so a bad request fails before data moves; a
 * command that fails anyway maps through `device-errors.ts`.
 */
import type { LbaRange, NamespaceDataChunk } from "../../control/backend.ts";
import { ControlError } from "../../control/errors.ts";
import type { BlockChannel } from "../../vfio/nvme/admin-channel.ts";
import { checkStatus } from "./device-errors.ts";

/** Bytes per Read / Write command (within the PF driver's 512 KiB transfer limit). */
export const IO_CHUNK_BYTES = 128 * 1024;

export interface NamespaceGeometry {
  nsid: number;
  /** NSZE, blocks. */
  sizeBlocks: bigint;
  lbaBytes: number;
}

function checkRange(ns: NamespaceGeometry, slba: bigint, blocks: bigint): void {
  if (slba < 0n || blocks <= 0n || slba + blocks > ns.sizeBlocks) {
    throw new ControlError(
      "invalid-argument",
      `LBA range [${slba}, +${blocks}) is outside namespace ${ns.nsid} (${ns.sizeBlocks} blocks)`,
    );
  }
}

/** Reads `ranges` (NLB 0's based) in order; each chunk is one Read command's data. */
export async function* readRanges(
  blocks: BlockChannel,
  ns: NamespaceGeometry,
  ranges: readonly LbaRange[],
  signal: AbortSignal,
): AsyncGenerator<NamespaceDataChunk> {
  for (const r of ranges) checkRange(ns, r.slba, BigInt(r.nlb) + 1n);
  const perCommand = Math.max(1, Math.floor(IO_CHUNK_BYTES / ns.lbaBytes));
  for (const r of ranges) {
    const first = Number(r.slba);
    const end = first + r.nlb + 1;
    for (let at = first; at < end; at += perCommand) {
      if (signal.aborted) throw new ControlError("cancelled", "read of namespace data cancelled");
      const n = Math.min(perCommand, end - at);
      const res = await blocks.read(ns.nsid, at, n);
      checkStatus(`Read nsid ${ns.nsid} slba ${at} blocks ${n}`, res.status);
      yield { slba: BigInt(at), data: res.data! };
    }
  }
}

/** Writes the chunks as they arrive; returns the number of blocks written. */
export async function writeChunks(
  blocks: BlockChannel,
  ns: NamespaceGeometry,
  chunks: AsyncIterable<NamespaceDataChunk>,
  signal: AbortSignal,
): Promise<bigint> {
  let written = 0n;
  for await (const c of chunks) {
    if (signal.aborted) throw new ControlError("cancelled", "write of namespace data cancelled");
    if (c.data.byteLength === 0 || c.data.byteLength % ns.lbaBytes !== 0) {
      throw new ControlError(
        "invalid-argument",
        `chunk of ${c.data.byteLength} bytes at slba ${c.slba} is not whole ${ns.lbaBytes}-byte blocks`,
      );
    }
    const count = c.data.byteLength / ns.lbaBytes;
    checkRange(ns, c.slba, BigInt(count));
    const first = Number(c.slba);
    for (let at = 0; at < c.data.byteLength; at += IO_CHUNK_BYTES) {
      const part = c.data.subarray(at, Math.min(c.data.byteLength, at + IO_CHUNK_BYTES));
      const slba = first + at / ns.lbaBytes;
      const res = await blocks.write(ns.nsid, slba, part);
      checkStatus(`Write nsid ${ns.nsid} slba ${slba} blocks ${part.byteLength / ns.lbaBytes}`, res.status);
    }
    written += BigInt(count);
  }
  return written;
}
