import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createGuestMemory, GUEST_PAGE_BYTES, type GuestMemory } from "./guest-memory.ts";
import {
  buildPrps,
  PRP_ENTRIES_PER_PAGE,
  type PrpPair,
  prpListPagesFor,
  prpListPagesForMaxTransfer,
  prpPagesTouched,
} from "./prp-builder.ts";

const PAGE = GUEST_PAGE_BYTES;

/**
 * Reference model: how a controller walks PRP1/PRP2 (NVMe Base §4.3.1), written independently of the
 * builder. Returns the (address, length) segments of the transfer in order.
 */
function walkPrps(
  mem: GuestMemory,
  prp1: number,
  prp2: number,
  lengthBytes: number,
): Array<[number, number]> {
  const segs: Array<[number, number]> = [];
  const first = Math.min(lengthBytes, PAGE - (prp1 % PAGE));
  segs.push([prp1, first]);
  let remaining = lengthBytes - first;
  if (remaining === 0) return segs;
  if (remaining <= PAGE) {
    assert.equal(prp2 % PAGE, 0, "PRP2 data pointer must be page aligned");
    segs.push([prp2, remaining]);
    return segs;
  }
  let entry = prp2;
  while (remaining > 0) {
    const isLastSlot = entry % PAGE === PAGE - 8;
    const value = mem.readU64(entry);
    if (isLastSlot && remaining > PAGE) {
      assert.equal(value % PAGE, 0, "chained list pointer must be page aligned");
      entry = value;
      continue;
    }
    assert.equal(value % PAGE, 0, "list entries must be page aligned");
    const len = Math.min(PAGE, remaining);
    segs.push([value, len]);
    remaining -= len;
    entry += 8;
  }
  return segs;
}

function expectedSegments(gpa: number, lengthBytes: number): Array<[number, number]> {
  const segs: Array<[number, number]> = [];
  let at = gpa;
  let remaining = lengthBytes;
  while (remaining > 0) {
    const len = Math.min(remaining, PAGE - (at % PAGE));
    segs.push([at, len]);
    at += len;
    remaining -= len;
  }
  return segs;
}

test("list page arithmetic", () => {
  assert.equal(PRP_ENTRIES_PER_PAGE, 512);
  assert.equal(prpPagesTouched(0x1000, 4096), 1);
  assert.equal(prpPagesTouched(0x1004, 4096), 2);
  assert.equal(prpListPagesFor(1), 0);
  assert.equal(prpListPagesFor(2), 0);
  assert.equal(prpListPagesFor(3), 1);
  assert.equal(prpListPagesFor(513), 1); // 512 entries: one full list page
  assert.equal(prpListPagesFor(514), 2); // 513 entries: 511 + chain, then 2
  assert.equal(prpListPagesFor(1024), 2); // 1023 entries: 511 + 512
  assert.equal(prpListPagesFor(1025), 3);
  assert.equal(prpListPagesForMaxTransfer(128 * 1024), 1);
  assert.equal(prpListPagesForMaxTransfer(2 * 1024 * 1024), 1);
  assert.equal(prpListPagesForMaxTransfer(4 * 1024 * 1024), 3);
});

test("PRP1 only, PRP1+PRP2, and list cases", () => {
  const mem = createGuestMemory(64 * PAGE);
  const out: PrpPair = { prp1: -1, prp2: -1 };
  assert.ok(buildPrps(mem, 0x2000, 512, 0x10000, 1, out));
  assert.deepEqual(out, { prp1: 0x2000, prp2: 0 });
  assert.ok(buildPrps(mem, 0x2000, 8192, 0x10000, 1, out));
  assert.deepEqual(out, { prp1: 0x2000, prp2: 0x3000 });
  assert.ok(buildPrps(mem, 0x2e00, 4096, 0x10000, 1, out));
  assert.deepEqual(out, { prp1: 0x2e00, prp2: 0x3000 });
  assert.ok(buildPrps(mem, 0x2000, 3 * PAGE, 0x10000, 1, out));
  assert.deepEqual(out, { prp1: 0x2000, prp2: 0x10000 });
  assert.equal(mem.readU64(0x10000), 0x3000);
  assert.equal(mem.readU64(0x10008), 0x4000);
});

test("refuses unaligned buffers, empty transfers and too-small lists without writing", () => {
  const mem = createGuestMemory(8 * PAGE);
  const out: PrpPair = { prp1: 0, prp2: 0 };
  assert.equal(buildPrps(mem, 0x1002, 512, 0x4000, 1, out), false);
  assert.equal(buildPrps(mem, 0x1000, 0, 0x4000, 1, out), false);
  assert.equal(buildPrps(mem, 0x1000, 3 * PAGE, 0x4000, 0, out), false);
  mem.startDirtyLog();
  assert.equal(buildPrps(mem, 0, 514 * PAGE, 0x4000, 1, out), false);
  assert.equal(mem.dirtyPageCount, 0);
});

test("a controller walking the PRPs sees exactly the buffer (property, against a reference walker)", () => {
  const listGpa = PAGE; // list pages at the bottom, buffers far above (the walker never reads them)
  const mem = createGuestMemory(8 * PAGE);
  const out: PrpPair = { prp1: 0, prp2: 0 };
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1 << 20 }).map((p) => p * PAGE),
      fc.integer({ min: 0, max: PAGE / 4 - 1 }).map((d) => d * 4),
      fc.oneof(
        fc.integer({ min: 1, max: 3 * PAGE }),
        fc.integer({ min: 1, max: 600 * PAGE }),
        fc.integer({ min: 1020 * PAGE, max: 1030 * PAGE }),
      ),
      (basePage, offset, lengthBytes) => {
        const bufferGpa = 64 * PAGE + basePage + offset;
        const listPages = prpListPagesForMaxTransfer(lengthBytes);
        assert.ok(listPages <= 7);
        mem.startDirtyLog();
        assert.ok(buildPrps(mem, bufferGpa, lengthBytes, listGpa, listPages, out));
        assert.equal(out.prp1, bufferGpa);
        assert.deepEqual(
          walkPrps(mem, out.prp1, out.prp2, lengthBytes),
          expectedSegments(bufferGpa, lengthBytes),
        );
        const pages = prpPagesTouched(bufferGpa, lengthBytes);
        const used = prpListPagesFor(pages);
        // Exactly the list pages used were dirty-logged.
        assert.deepEqual(
          [...mem.collectDirty()],
          Array.from({ length: used }, (_, i) => listGpa / PAGE + i),
        );
      },
    ),
    { numRuns: 300 },
  );
});
