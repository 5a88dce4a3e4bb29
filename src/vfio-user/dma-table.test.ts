import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { DmaTable } from "./dma-table.ts";
import { Errno } from "./protocol/constants.ts";

test("add refuses overlap with EEXIST, accepts adjacent ranges, ENOSPC when full", () => {
  const t = new DmaTable(3);
  assert.equal(t.add({ iova: 0x1000, sizeBytes: 0x1000, flags: 3 }), 0);
  assert.equal(t.add({ iova: 0x1800, sizeBytes: 0x1000, flags: 3 }), Errno.EEXIST);
  assert.equal(t.add({ iova: 0x0, sizeBytes: 0x1001, flags: 3 }), Errno.EEXIST);
  assert.equal(t.add({ iova: 0x0, sizeBytes: 0x1000, flags: 3 }), 0);
  assert.equal(t.add({ iova: 0x2000, sizeBytes: 0x1000, flags: 1 }), 0);
  assert.equal(t.add({ iova: 0x9000, sizeBytes: 0x1000, flags: 1 }), Errno.ENOSPC);
  assert.equal(t.add({ iova: 0x9000, sizeBytes: 0, flags: 1 }), Errno.EINVAL);
  assert.deepEqual(
    t.entries().map((e) => e.iova),
    [0, 0x1000, 0x2000],
  );
});

test("remove needs an exact match; find needs the whole range inside one entry", () => {
  const t = new DmaTable();
  t.add({ iova: 0x1000, sizeBytes: 0x1000, flags: 3 });
  t.add({ iova: 0x2000, sizeBytes: 0x1000, flags: 3 });
  assert.equal(t.remove(0x1000, 0x800), Errno.ENOENT);
  assert.equal(t.find(0x1ff0, 0x20), undefined, "spans two entries");
  assert.equal(t.find(0x1ff0, 0x10)?.iova, 0x1000);
  assert.equal(t.find(0x3000, 1), undefined);
  assert.equal(t.remove(0x1000, 0x1000), 0);
  assert.equal(t.size, 1);
});

test("property: the table never holds overlapping ranges and find agrees with a linear scan", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(64), fc.integer({ min: 1, max: 16 }), fc.boolean()), { maxLength: 60 }),
      fc.nat(80),
      fc.integer({ min: 1, max: 8 }),
      (ops, q, qn) => {
        const t = new DmaTable();
        for (const [iova, size, isAdd] of ops) {
          if (isAdd) t.add({ iova, sizeBytes: size, flags: 3 });
          else t.remove(iova, size);
        }
        const es = t.entries();
        for (let i = 1; i < es.length; i++) assert.ok(es[i - 1]!.iova + es[i - 1]!.sizeBytes <= es[i]!.iova);
        const linear = es.find((e) => q >= e.iova && q + qn <= e.iova + e.sizeBytes);
        assert.equal(t.find(q, qn), linear);
      },
    ),
    { numRuns: 300 },
  );
});
