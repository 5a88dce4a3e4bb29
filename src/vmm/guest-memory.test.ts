import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createGuestMemory, GUEST_PAGE_BYTES, GuestMemory } from "./guest-memory.ts";
import { GuestMemoryError } from "./guest-memory-error.ts";

const PAGE = GUEST_PAGE_BYTES;

test("size must be a positive multiple of 4 KiB", () => {
  assert.throws(() => createGuestMemory(0), GuestMemoryError);
  assert.throws(() => createGuestMemory(PAGE + 1), GuestMemoryError);
  assert.throws(() => new GuestMemory(new Uint8Array(100)), GuestMemoryError);
  const m = createGuestMemory(4 * PAGE);
  assert.equal(m.sizeBytes, 4 * PAGE);
  assert.equal(m.pageCount, 4);
});

test("accessors are bounds-checked and little-endian", () => {
  const m = createGuestMemory(2 * PAGE);
  m.writeU32(8, 0x11223344);
  assert.equal(m.bytes[8], 0x44);
  assert.equal(m.readU32(8), 0x11223344);
  m.writeU64(16, 0x1_2345_6789);
  assert.equal(m.readU64(16), 0x1_2345_6789);
  m.writeU16(30, 0xbeef);
  assert.equal(m.readU16(30), 0xbeef);
  m.write(2 * PAGE - 3, new Uint8Array([1, 2, 3]));
  const dst = new Uint8Array(3);
  m.read(2 * PAGE - 3, dst);
  assert.deepEqual([...dst], [1, 2, 3]);
  assert.throws(() => m.write(2 * PAGE - 2, new Uint8Array(3)), { code: "out-of-bounds" });
  assert.throws(() => m.read(-1, dst), { code: "out-of-bounds" });
  assert.throws(() => m.view(2 * PAGE, 1), { code: "out-of-bounds" });
  assert.throws(() => m.readU32(2 * PAGE - 2), { code: "out-of-bounds" });
  assert.throws(() => m.writeU64(1.5, 0), { code: "out-of-bounds" });
  assert.equal(m.view(2 * PAGE, 0).byteLength, 0);
});

test("works over caller-supplied bytes with an offset (e.g. a slice of a shared mapping)", () => {
  const backing = new Uint8Array(3 * PAGE);
  const m = new GuestMemory(backing.subarray(PAGE));
  m.writeU32(0, 0xdeadbeef);
  assert.equal(new DataView(backing.buffer).getUint32(PAGE, true), 0xdeadbeef);
  assert.equal(m.dataView.getUint32(0, true), 0xdeadbeef);
});

test("allocator never hands out page 0 by default and reports out-of-memory", () => {
  const m = createGuestMemory(4 * PAGE);
  const a = m.allocPages(3);
  assert.equal(a, PAGE);
  assert.throws(() => m.allocPages(1), { code: "out-of-memory" });
  m.free(a);
  assert.throws(() => m.free(a), { code: "double-free" });
  assert.equal(m.allocBytes(3 * PAGE), PAGE);
  const z = createGuestMemory(PAGE, { reservedLowPages: 0 });
  assert.equal(z.allocPages(1), 0);
});

type AllocOp = { kind: "alloc"; pages: number } | { kind: "free"; pick: number };

test("allocator: allocations never overlap, stay in RAM and coalesce on free (property)", () => {
  const opArb: fc.Arbitrary<AllocOp> = fc.oneof(
    fc.record({ kind: fc.constant("alloc" as const), pages: fc.integer({ min: 1, max: 9 }) }),
    fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 64 }), fc.array(opArb, { maxLength: 80 }), (pages, ops) => {
      const m = createGuestMemory(pages * PAGE);
      const owner = new Int32Array(pages).fill(-1);
      owner[0] = -2; // reserved
      const live: Array<{ gpa: number; pages: number }> = [];
      for (const op of ops) {
        if (op.kind === "alloc") {
          let gpa: number;
          try {
            gpa = m.allocPages(op.pages);
          } catch (e) {
            assert.ok(e instanceof GuestMemoryError && e.code === "out-of-memory");
            assert.ok(m.largestFreeRunPages < op.pages);
            continue;
          }
          assert.equal(gpa % PAGE, 0);
          const first = gpa / PAGE;
          assert.ok(first >= 1 && first + op.pages <= pages);
          for (let p = first; p < first + op.pages; p++) {
            assert.equal(owner[p], -1, "page handed out twice");
            owner[p] = live.length;
          }
          live.push({ gpa, pages: op.pages });
        } else if (live.length > 0) {
          const [victim] = live.splice(op.pick % live.length, 1);
          m.free(victim!.gpa);
          for (let p = victim!.gpa / PAGE; p < victim!.gpa / PAGE + victim!.pages; p++) owner[p] = -1;
        }
        assert.equal(
          m.allocatedPages,
          live.reduce((s, l) => s + l.pages, 0),
        );
      }
      for (const l of live) m.free(l.gpa);
      // Everything freed → one run again.
      assert.equal(m.largestFreeRunPages, pages - 1);
      assert.equal(m.allocPages(pages - 1), PAGE);
    }),
    { numRuns: 200 },
  );
});

type MemOp =
  | { kind: "write"; gpa: number; len: number; via: number }
  | { kind: "toggle" }
  | { kind: "collect"; bitmap: boolean };

test("dirty log marks exactly the pages written while on, read-and-clear (property)", () => {
  const pages = 40;
  const size = pages * PAGE;
  const opArb: fc.Arbitrary<MemOp> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc
        .record({
          gpa: fc.integer({ min: 0, max: size - 1 }),
          len: fc.integer({ min: 1, max: 3 * PAGE }),
          via: fc.integer({ min: 0, max: 4 }),
        })
        .map(({ gpa, len, via }) => ({ kind: "write" as const, gpa, len: Math.min(len, size - gpa), via })),
    },
    { weight: 1, arbitrary: fc.constant({ kind: "toggle" as const }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("collect" as const), bitmap: fc.boolean() }) },
  );
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const m = createGuestMemory(size);
      const model = new Set<number>();
      let on = false;
      const touch = (gpa: number, len: number) => {
        if (!on) return;
        for (let p = Math.floor(gpa / PAGE); p <= Math.floor((gpa + len - 1) / PAGE); p++) model.add(p);
      };
      for (const op of ops) {
        if (op.kind === "toggle") {
          if (on) m.stopDirtyLog();
          else m.startDirtyLog();
          on = !on;
          model.clear();
        } else if (op.kind === "write") {
          const { gpa, len } = op;
          switch (op.via) {
            case 0:
              m.write(gpa, new Uint8Array(len).fill(7));
              touch(gpa, len);
              break;
            case 1:
              m.viewForWrite(gpa, len).fill(9);
              touch(gpa, len);
              break;
            case 2:
              m.fill(gpa, len, 1);
              touch(gpa, len);
              break;
            case 3:
              if (gpa + 4 <= size) {
                m.writeU32(gpa, 5);
                touch(gpa, 4);
              }
              break;
            default: {
              // Reads never dirty a page.
              m.read(gpa, new Uint8Array(len));
              m.view(gpa, len);
            }
          }
        } else {
          const expected = [...model].sort((a, b) => a - b);
          assert.equal(m.dirtyPageCount, expected.length);
          let got: number[];
          if (op.bitmap) {
            const bm = m.collectDirtyBitmap();
            assert.equal(bm.length, Math.ceil(pages / 32));
            got = [];
            for (let p = 0; p < pages; p++) if ((bm[p >>> 5]! >>> (p & 31)) & 1) got.push(p);
          } else got = [...m.collectDirty()];
          assert.deepEqual(got, expected);
          model.clear();
          assert.equal(m.collectDirty().length, 0, "second collect must be empty");
        }
      }
    }),
    { numRuns: 200 },
  );
});

test("markAllDirty marks every page and only while logging", () => {
  const m = createGuestMemory(35 * PAGE);
  m.markAllDirty();
  assert.equal(m.dirtyPageCount, 0);
  m.startDirtyLog();
  m.markAllDirty();
  assert.equal(m.dirtyPageCount, 35);
  const pages = m.collectDirty();
  assert.deepEqual(
    [...pages],
    Array.from({ length: 35 }, (_, i) => i),
  );
  assert.equal(m.dirtyPageCount, 0);
});
