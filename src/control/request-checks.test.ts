import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ControlError } from "./errors.ts";
import {
  checkCntlid,
  checkDirtyReport,
  checkLbaRanges,
  checkMemoryRanges,
  checkNsid,
  checkPageSize,
  checkU8,
} from "./request-checks.ts";

const invalid = (e: unknown): boolean => ControlError.is(e, "invalid-argument");

test("scalar checks accept their ranges and refuse the edges outside", () => {
  assert.equal(checkCntlid(0), 0);
  assert.equal(checkCntlid(0xffef), 0xffef);
  assert.throws(() => checkCntlid(0xfff0), invalid);
  assert.equal(checkU8("csvi", 255), 255);
  assert.throws(() => checkU8("csvi", 256), /csvi 256/);
  assert.throws(() => checkNsid(0), invalid);
  assert.throws(() => checkNsid(0xffffffff), invalid);
  assert.equal(checkPageSize(4096n), 4096n);
  assert.equal(checkPageSize(1n << 21n), 1n << 21n);
  for (const bad of [0n, 2048n, 6144n, 1n << 31n]) assert.throws(() => checkPageSize(bad), invalid);
});

test("checkMemoryRanges accepts exactly the sets of aligned, non-overlapping, non-empty ranges", () => {
  const page = 4096n;
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ startPage: fc.integer({ min: 0, max: 64 }), pages: fc.integer({ min: 0, max: 8 }) }),
        {
          minLength: 1,
          maxLength: 6,
        },
      ),
      (spec) => {
        const ranges = spec.map((s) => ({
          iova: BigInt(s.startPage) * page,
          lengthBytes: BigInt(s.pages) * page,
        }));
        const sorted = [...spec].sort((a, b) => a.startPage - b.startPage);
        const valid =
          spec.every((s) => s.pages > 0) &&
          sorted.every((s, i) => i === 0 || s.startPage >= sorted[i - 1]!.startPage + sorted[i - 1]!.pages);
        if (valid) assert.deepEqual(checkMemoryRanges(ranges, page), ranges);
        else assert.throws(() => checkMemoryRanges(ranges, page), invalid);
      },
    ),
    { numRuns: 300 },
  );
  assert.throws(() => checkMemoryRanges([{ iova: 100n, lengthBytes: page }], page), /not aligned/);
  assert.throws(
    () => checkMemoryRanges([{ iova: (1n << 64n) - page, lengthBytes: 2n * page }], page),
    /2\^64/,
  );
  assert.throws(() => checkMemoryRanges([], page), /ranges/);
});

test("checkDirtyReport bounds the bitmap to 1 MiB and returns the page count", () => {
  assert.equal(checkDirtyReport(0n, 4096n, 4096n), 1);
  assert.equal(checkDirtyReport(1n << 30n, (8n << 20n) * 4096n, 4096n), 8 << 20);
  assert.throws(() => checkDirtyReport(0n, (8n << 20n) * 4096n + 4096n, 4096n), /split the report/);
  assert.throws(() => checkDirtyReport(0n, 0n, 4096n), invalid);
  assert.throws(() => checkDirtyReport(512n, 4096n, 4096n), /not aligned/);
});

test("checkLbaRanges: nlb is 0's based, so slba + nlb + 1 must fit in 64 bits", () => {
  assert.deepEqual(checkLbaRanges([{ slba: (1n << 64n) - 1n, nlb: 0 }]), [
    { slba: (1n << 64n) - 1n, nlb: 0 },
  ]);
  assert.throws(() => checkLbaRanges([{ slba: (1n << 64n) - 1n, nlb: 1 }]), /2\^64/);
  assert.throws(() => checkLbaRanges([]), invalid);
  assert.throws(() => checkLbaRanges([{ slba: 0n, nlb: -1 }]), invalid);
});
