import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Dma } from "../memory/dma.ts";
import { Status } from "../nvme/status.ts";
import { DataPointerWalker, SglType } from "./data-pointer.ts";

const PAGE = 4096;
const MiB = 1 << 20;
/** Two mapped ranges with a hole between them: [0, 4 MiB) and [8 MiB, 12 MiB). */
const LOW = { iova: 0, bytes: 4 * MiB };
const HIGH = { iova: 8 * MiB, bytes: 4 * MiB };

function rig() {
  const low = new Uint8Array(LOW.bytes);
  const high = new Uint8Array(HIGH.bytes);
  const dma = new Dma();
  assert.ok(dma.map(LOW.iova, low));
  assert.ok(dma.map(HIGH.iova, high));
  const view = (iova: number) =>
    iova >= HIGH.iova
      ? { v: new DataView(high.buffer), at: iova - HIGH.iova }
      : { v: new DataView(low.buffer), at: iova };
  const writeU64 = (iova: number, value: number) => {
    const { v, at } = view(iova);
    v.setUint32(at, value >>> 0, true);
    v.setUint32(at + 4, Math.floor(value / 2 ** 32), true);
  };
  return { dma, walker: new DataPointerWalker(dma), writeU64, view };
}

/** The segments a walk produced, as [iova, length] pairs. */
function segments(w: DataPointerWalker): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < w.count; i++) {
    assert.equal(w.regions[i]!.iova + w.offsets[i]!, w.iovas[i], "offset matches iova");
    out.push([w.iovas[i]!, w.lengths[i]!]);
  }
  return out;
}

/** Reference: the pages in order, merged where one ends exactly where the next begins (same range). */
function merged(pieces: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  const rangeOf = (iova: number) => (iova >= HIGH.iova ? 1 : 0);
  for (const [iova, len] of pieces) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === iova && rangeOf(last[0]) === rangeOf(iova))
      last[1] += len;
    else out.push([iova, len]);
  }
  return out;
}

test("PRP walk (property): segments are the pages in order, contiguous pages merged; lists chain", () => {
  const { walker, writeU64 } = rig();
  // Data pages come from [1 MiB, 4 MiB) and [8 MiB, 12 MiB); PRP lists live in [0, 1 MiB).
  const dataPage = fc.oneof(
    fc.integer({ min: 256, max: 1023 }).map((p) => p * PAGE),
    fc.integer({ min: 0, max: 1023 }).map((p) => HIGH.iova + p * PAGE),
  );
  fc.assert(
    fc.property(
      dataPage,
      fc.integer({ min: 0, max: PAGE / 4 - 1 }).map((d) => d * 4),
      fc.oneof(fc.integer({ min: 1, max: 40 * PAGE }), fc.integer({ min: 511 * PAGE, max: 1100 * PAGE })),
      fc.array(fc.oneof(fc.constant("next" as const), dataPage), { minLength: 1100, maxLength: 1100 }),
      fc.integer({ min: 0, max: 63 }).map((q) => q * 8),
      (firstPage, offset, lengthBytes, later, listOffset) => {
        const prp1 = firstPage + offset;
        const first = Math.min(lengthBytes, PAGE - offset);
        const pieces: [number, number][] = [[prp1, first]];
        // Pages 2..n: "next" continues the previous page (a contiguous buffer), else a random page.
        let remaining = lengthBytes - first;
        let prev = firstPage;
        const pages: number[] = [];
        for (let k = 0; remaining > 0; k++) {
          const choice = later[k]!;
          const page =
            choice === "next" && prev + PAGE < 12 * MiB && prev + PAGE !== 4 * MiB
              ? prev + PAGE
              : typeof choice === "number"
                ? choice
                : firstPage;
          const n = Math.min(remaining, PAGE);
          pieces.push([page, n]);
          pages.push(page);
          remaining -= n;
          prev = page;
        }
        let prp2 = 0;
        if (pages.length === 1) prp2 = pages[0]!;
        else if (pages.length > 1) {
          // PRP list at listOffset in page 0 of the low range, chaining through consecutive list pages.
          const listBase = 16 * PAGE + listOffset;
          prp2 = listBase;
          let at = listBase;
          for (let k = 0; k < pages.length; k++) {
            const lastSlot = (at + 8) % PAGE === 0;
            if (lastSlot && k < pages.length - 1) {
              const next = at + 8; // the next list page follows
              writeU64(at, next);
              at = next;
            }
            writeU64(at, pages[k]!);
            at += 8;
          }
        }
        const st = walker.walkPrp(prp1, prp2, lengthBytes, PAGE, true);
        assert.equal(st, Status.Success);
        assert.deepEqual(segments(walker), merged(pieces));
      },
    ),
    { numRuns: 200 },
  );
});

test("PRP walk: a contiguous 128 KiB buffer is one segment; errors keep their statuses", () => {
  const { walker, writeU64 } = rig();
  const buf = MiB;
  const list = 2 * PAGE;
  for (let k = 1; k < 32; k++) writeU64(list + (k - 1) * 8, buf + k * PAGE);
  assert.equal(walker.walkPrp(buf, list, 32 * PAGE, PAGE, true), Status.Success);
  assert.deepEqual(segments(walker), [[buf, 32 * PAGE]]);
  // A page that leaves the mapped range: Data Transfer Error; a list entry with an offset: PRP Offset Invalid.
  writeU64(list + 8, 5 * MiB);
  assert.equal(walker.walkPrp(buf, list, 32 * PAGE, PAGE, true), Status.DataTransferError);
  writeU64(list + 8, buf + 2 * PAGE + 512);
  assert.equal(walker.walkPrp(buf, list, 32 * PAGE, PAGE, true), Status.PrpOffsetInvalid);
  assert.equal(walker.walkPrp(buf + 2, 0, 512, PAGE, true), Status.PrpOffsetInvalid);
  assert.equal(
    walker.walkPrp(buf, 6 * MiB, 16 * PAGE, PAGE, true),
    Status.DataTransferError,
    "list unmapped",
  );
  // Addresses beyond 32 bits: page offsets are still exact.
  assert.equal(walker.walkPrp(2 ** 40 + PAGE, 0, 512, PAGE, true), Status.DataTransferError);
  assert.equal(walker.walkPrp(2 ** 40 + 8, 0, 512, PAGE, true), Status.DataTransferError);
  assert.equal(walker.walkPrp(buf + PAGE - 512, 2 ** 45 + 512, 1024, PAGE, true), Status.PrpOffsetInvalid);
  assert.equal(walker.walkPrp(buf + PAGE - 512, 2 ** 45, 1024, PAGE, true), Status.DataTransferError);
  // Pages that are adjacent but in different mapped ranges stay two segments.
  assert.equal(walker.walkPrp(4 * MiB - PAGE, 8 * MiB, 2 * PAGE, PAGE, true), Status.Success);
  assert.deepEqual(segments(walker), [
    [4 * MiB - PAGE, PAGE],
    [8 * MiB, PAGE],
  ]);
});

function sqeWithSgl(addr: number, len: number, type: number): DataView {
  const v = new DataView(new ArrayBuffer(64));
  v.setUint32(24, addr >>> 0, true);
  v.setUint32(28, Math.floor(addr / 2 ** 32), true);
  v.setUint32(32, len, true);
  v.setUint8(39, type << 4);
  return v;
}

test("SGL walk: data block in the SQE, segment lists read from guest memory, descriptor errors", () => {
  const { walker, writeU64, view } = rig();
  const desc = (iova: number, addr: number, len: number, type: number) => {
    writeU64(iova, addr);
    const { v, at } = view(iova);
    v.setUint32(at + 8, len, true);
    v.setUint8(at + 15, type << 4);
  };
  assert.equal(walker.walkSgl(sqeWithSgl(MiB, 8192, SglType.DataBlock), 24, 8192, true), Status.Success);
  assert.deepEqual(segments(walker), [[MiB, 8192]]);

  // Segment → [data, data, last segment] → Last Segment → [data]; the first two are contiguous.
  const seg = 4 * PAGE;
  const last = 5 * PAGE;
  desc(seg, MiB, 4096, SglType.DataBlock);
  desc(seg + 16, MiB + 4096, 4096, SglType.DataBlock);
  desc(seg + 32, last, 16, SglType.LastSegment);
  desc(last, HIGH.iova + 512, 1000, SglType.DataBlock);
  const sqe = sqeWithSgl(seg, 48, SglType.Segment);
  assert.equal(walker.walkSgl(sqe, 24, 9000, true), Status.Success);
  assert.deepEqual(segments(walker), [
    [MiB, 8192],
    [HIGH.iova + 512, 808],
  ]);
  // Too little data described; a bit bucket; an unmapped segment list.
  assert.equal(walker.walkSgl(sqe, 24, 9500, true), Status.DataSglLengthInvalid);
  assert.equal(
    walker.walkSgl(sqeWithSgl(MiB, 512, SglType.BitBucket), 24, 512, true),
    Status.SglDescriptorTypeInvalid,
  );
  assert.equal(
    walker.walkSgl(sqeWithSgl(6 * MiB, 16, SglType.LastSegment), 24, 512, true),
    Status.DataTransferError,
  );
});
