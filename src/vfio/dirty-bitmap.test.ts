import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Dma } from "../memory/dma.ts";
import { DirtyPageBitmap } from "./dirty-bitmap.ts";
import { dmaBitmapBytes } from "./dma-logging.ts";
import { Errno } from "./states.ts";

const KiB = 1024;

function bitsOf(bm: Uint8Array): number[] {
  const out: number[] = [];
  for (let n = 0; n < bm.length * 8; n++) if (bm[n >>> 3]! & (1 << (n & 7))) out.push(n);
  return out;
}

function report(log: DirtyPageBitmap, iova: number, length: number, pageSize: number): number[] {
  const r = log.reportAndClear(BigInt(iova), BigInt(length), BigInt(pageSize));
  assert.ok(r instanceof Uint8Array);
  assert.equal(BigInt(r.length), dmaBitmapBytes(BigInt(length), BigInt(pageSize)));
  return bitsOf(r);
}

describe("DirtyPageBitmap", () => {
  it("logs the writes of the Dma it is attached to, only while started, only inside the ranges", () => {
    const dma = new Dma();
    dma.map(0, new Uint8Array(256 * KiB));
    dma.map(1024 * KiB, new Uint8Array(64 * KiB));
    const log = new DirtyPageBitmap({ dma });
    assert.ok(dma.write(0, new Uint8Array(1)), "not started: nothing logged");
    assert.deepEqual(log.start([{ iova: 0n, length: 128n * 1024n }], 4096n), { pageSize: 4096n });
    assert.ok(log.active);
    dma.write(5 * 4096 + 100, new Uint8Array(4096)); // pages 5, 6
    dma.write(200 * KiB, new Uint8Array(8)); // outside the logged range
    dma.windowForWrite(7 * 4096, 1); // page 7, through a write window
    dma.read(9 * 4096, new Uint8Array(16)); // reads are never logged
    assert.deepEqual(report(log, 0, 256 * KiB, 4096), [5, 6, 7]);
    log.stop();
    assert.equal(log.active, false);
    dma.write(0, new Uint8Array(1));
    assert.deepEqual(log.start("all", 4096n), { pageSize: 4096n });
    assert.deepEqual(report(log, 0, 4096, 4096), [], "stop dropped the log and detached");
    dma.write(1024 * KiB + 4096, new Uint8Array(1));
    assert.deepEqual(report(log, 1024 * KiB, 64 * KiB, 4096), [1], "scope all");
  });

  it("chooses the granularity from the hint, clamped to [min, max]", () => {
    const log = new DirtyPageBitmap({ maxPageBytes: 2 * 1024 * 1024 });
    assert.deepEqual(log.start("all", 512n), { pageSize: 4096n });
    log.stop();
    assert.deepEqual(log.start("all", 65536n), { pageSize: 65536n });
    assert.deepEqual(log.start("all", 65536n), { errno: Errno.EBUSY });
    log.stop();
    assert.deepEqual(log.start("all", 1n << 40n), { pageSize: 2n * 1024n * 1024n });
    assert.throws(() => new DirtyPageBitmap({ minPageBytes: 3000 }), RangeError);
    assert.deepEqual(new DirtyPageBitmap().reportAndClear(0n, 4096n, 4096n), { errno: Errno.EINVAL });
  });

  it("replicates a coarse logged page into finer report bits and merges fine ones", () => {
    const log = new DirtyPageBitmap();
    log.start("all", 16384n); // 16 KiB logged pages
    log.logWrite(16384 + 1, 1); // logged page 1 = [16 KiB, 32 KiB)
    assert.deepEqual(report(log, 0, 64 * KiB, 4096), [4, 5, 6, 7], "replicated to 4 KiB bits");
    log.logWrite(16384 + 1, 1);
    assert.deepEqual(report(log, 0, 256 * KiB, 65536), [0], "merged into a 64 KiB bit");
    log.logWrite(16384 + 1, 1);
    assert.deepEqual(report(log, 8192, 64 * KiB, 8192), [1, 2], "window not aligned to the log granularity");
  });

  it("clears only logged pages the window covers wholly (a partial report loses nothing)", () => {
    const log = new DirtyPageBitmap();
    log.start("all", 16384n);
    log.logWrite(20 * KiB, 1); // logged page 1 = [16, 32) KiB
    assert.deepEqual(report(log, 0, 24 * KiB, 4096), [4, 5], "bits for the covered part");
    assert.deepEqual(report(log, 24 * KiB, 8 * KiB, 4096), [0, 1], "still dirty: reported again");
    assert.deepEqual(report(log, 16 * KiB, 16 * KiB, 4096), [0, 1, 2, 3], "whole page covered");
    assert.deepEqual(report(log, 0, 64 * KiB, 4096), [], "now clear");
  });

  it("handles windows and ranges near 2^53 and beyond", () => {
    const log = new DirtyPageBitmap();
    const top = 2 ** 53 - 4096;
    log.start([{ iova: BigInt(top), length: 1n << 20n }], 4096n);
    log.logWrite(top, 1);
    assert.deepEqual(report(log, top, 1 << 20, 4096), [0]);
    const r = log.reportAndClear(1n << 60n, 4096n, 4096n);
    assert.ok(r instanceof Uint8Array);
    assert.deepEqual(bitsOf(r), []);
  });

  it("matches a brute-force model over random writes and reports (property)", () => {
    const P_CHOICES = [4096, 8192, 65536];
    const R_CHOICES = [4096, 8192, 16384, 131072];
    const SPACE = 4 * 1024 * 1024;
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("write" as const),
        iova: fc.integer({ min: 0, max: SPACE - 1 }),
        length: fc.integer({ min: 1, max: 3 * 65536 }),
      }),
      fc.record({
        kind: fc.constant("report" as const),
        iova: fc.integer({ min: 0, max: SPACE / 512 }).map((x) => x * 512),
        length: fc.integer({ min: 1, max: 64 }).map((x) => x * 4096),
        rep: fc.constantFrom(...R_CHOICES),
      }),
    );
    const rangesArb = fc.option(
      fc
        .uniqueArray(fc.integer({ min: 0, max: 63 }), { minLength: 1, maxLength: 6 })
        .map((starts) => starts.map((s) => ({ start: s * 65536, end: s * 65536 + 65536 }))),
      { nil: undefined },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...P_CHOICES),
        rangesArb,
        fc.array(op, { maxLength: 40 }),
        (P, ranges, ops) => {
          const log = new DirtyPageBitmap();
          const scope =
            ranges === undefined
              ? "all"
              : ranges.map((r) => ({ iova: BigInt(r.start), length: BigInt(r.end - r.start) }));
          log.start(scope, BigInt(P));
          const dirty = new Set<number>(); // logged page numbers
          const overlaps = (lo: number, hi: number): boolean =>
            ranges === undefined ? lo < hi : ranges.some((r) => Math.max(lo, r.start) < Math.min(hi, r.end));
          for (const o of ops) {
            if (o.kind === "write") {
              log.logWrite(o.iova, o.length);
              const end = o.iova + o.length;
              for (let k = Math.floor(o.iova / P); k * P < end; k++) {
                if (overlaps(Math.max(k * P, o.iova), Math.min((k + 1) * P, end))) dirty.add(k);
              }
              continue;
            }
            const got = report(log, o.iova, o.length, o.rep);
            const want: number[] = [];
            const bits = Math.ceil(o.length / o.rep);
            for (let n = 0; n < bits; n++) {
              const lo = o.iova + n * o.rep;
              const hi = Math.min(lo + o.rep, o.iova + o.length);
              for (const k of dirty) {
                if (k * P < hi && lo < (k + 1) * P) {
                  want.push(n);
                  break;
                }
              }
            }
            assert.deepEqual(got, want);
            for (const k of [...dirty])
              if (k * P >= o.iova && (k + 1) * P <= o.iova + o.length) dirty.delete(k);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
