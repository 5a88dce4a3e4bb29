import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createMemoryBlockStore } from "./memory-block-store.ts";
import { StorageError } from "./storage-error.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function pattern(lengthBytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff || 1;
  return b;
}

test("a 64 GiB namespace allocates nothing until written, and reads zeroes", () => {
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: (64 * GiB) / 512 });
  assert.equal(s.lbaBytes, 512);
  assert.equal(s.lbaCount, 128 * MiB);
  assert.equal(s.allocatedChunkCount(), 0);
  const dst = new Uint8Array(8192).fill(0xaa);
  s.read(40 * GiB, dst);
  assert.ok(dst.every((b) => b === 0));
  assert.equal(s.allocatedChunkCount(), 0);
});

test("4 KiB write inside one chunk allocates exactly one chunk and round-trips", () => {
  const s = createMemoryBlockStore({ lbaBytes: 4096, lbaCount: (64 * GiB) / 4096 });
  const src = pattern(4096, 3);
  s.write(17 * GiB + 8192, src);
  assert.equal(s.allocatedChunkCount(), 1);
  assert.equal(s.allocatedBytes(), MiB);
  const dst = new Uint8Array(4096);
  s.read(17 * GiB + 8192, dst);
  assert.deepEqual(dst, src);
});

test("a write across a chunk boundary lands in two chunks and reads back whole", () => {
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: (16 * MiB) / 512 });
  const src = pattern(8192, 9);
  const at = 3 * MiB - 4096;
  s.write(at, src);
  assert.equal(s.allocatedChunkCount(), 2);
  const dst = new Uint8Array(8192);
  s.read(at, dst);
  assert.deepEqual(dst, src);
  // A read spanning an allocated and an unallocated chunk: data, then zeroes.
  const wide = new Uint8Array(2 * MiB).fill(0x55);
  s.read(2 * MiB, wide);
  assert.deepEqual(wide.subarray(MiB - 4096, MiB + 4096), src);
  assert.ok(wide.subarray(0, MiB - 4096).every((b) => b === 0));
  assert.ok(wide.subarray(MiB + 4096).every((b) => b === 0));
});

test("deallocate and writeZeroes free wholly covered chunks and zero partial ones", () => {
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: (8 * MiB) / 512 });
  s.write(0, pattern(4 * MiB, 1));
  assert.equal(s.allocatedChunkCount(), 4);
  s.deallocate(MiB, MiB); // exactly chunk 1
  assert.equal(s.allocatedChunkCount(), 3);
  s.writeZeroes(2 * MiB + 512, 2 * MiB); // part of chunk 2, all of chunk 3
  assert.equal(s.allocatedChunkCount(), 2);
  const dst = new Uint8Array(4 * MiB);
  s.read(0, dst);
  const expected = pattern(4 * MiB, 1);
  expected.fill(0, MiB, 2 * MiB);
  expected.fill(0, 2 * MiB + 512, 4 * MiB);
  assert.deepEqual(dst, expected);
  s.deallocate(0, 8 * MiB);
  assert.equal(s.allocatedChunkCount(), 0);
  assert.equal(s.allocatedBytes(), 0);
});

test("the last chunk is only as large as the capacity left", () => {
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 2048 + 3 }); // 1 MiB + 1536 bytes
  s.write(MiB, pattern(1536, 2));
  assert.equal(s.allocatedBytes(), 1536);
  const dst = new Uint8Array(1536);
  s.read(MiB, dst);
  assert.deepEqual(dst, pattern(1536, 2));
  s.deallocate(MiB, 1536); // covers the whole (short) last chunk
  assert.equal(s.allocatedChunkCount(), 0);
});

test("model check: random writes, zeroes and deallocates agree with a flat buffer", () => {
  const capacityBytes = 64 * 512;
  const op = fc.record({
    kind: fc.constantFrom("write", "zero", "dealloc", "read"),
    offsetBytes: fc.integer({ min: 0, max: capacityBytes }),
    lengthBytes: fc.integer({ min: 0, max: 3 * 4096 }),
    seed: fc.integer({ min: 0, max: 255 }),
  });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
      const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 64, chunkBytes: 4096 });
      const model = new Uint8Array(capacityBytes);
      for (const o of ops) {
        const len = Math.min(o.lengthBytes, capacityBytes - o.offsetBytes);
        if (o.kind === "write") {
          const src = pattern(len, o.seed);
          s.write(o.offsetBytes, src);
          model.set(src, o.offsetBytes);
        } else if (o.kind === "zero") {
          s.writeZeroes(o.offsetBytes, len);
          model.fill(0, o.offsetBytes, o.offsetBytes + len);
        } else if (o.kind === "dealloc") {
          s.deallocate(o.offsetBytes, len);
          model.fill(0, o.offsetBytes, o.offsetBytes + len);
        } else {
          const dst = new Uint8Array(len);
          s.read(o.offsetBytes, dst);
          assert.deepEqual(dst, model.subarray(o.offsetBytes, o.offsetBytes + len));
        }
      }
      const all = new Uint8Array(capacityBytes);
      s.read(0, all);
      assert.deepEqual(all, model);
      assert.ok(s.allocatedChunkCount() <= capacityBytes / 4096);
    }),
    { numRuns: 300 },
  );
});

test("accesses outside the capacity are StorageError out-of-range", () => {
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 8 });
  const cases: Array<() => void> = [
    () => s.read(4096 - 511, new Uint8Array(512)),
    () => s.read(-1, new Uint8Array(1)),
    () => s.write(4096, new Uint8Array(1)),
    () => s.write(0.5, new Uint8Array(1)),
    () => s.writeZeroes(0, 4097),
    () => s.deallocate(4096, 1),
    () => s.deallocate(0, -1),
  ];
  for (const c of cases) assert.throws(c, (e) => StorageError.is(e, "out-of-range"));
  s.read(4096, new Uint8Array(0)); // an empty access at the end is in range
  assert.equal(s.allocatedChunkCount(), 0);
});

test("invalid geometry is open-failed; use after close is closed", async () => {
  for (const bad of [
    { lbaBytes: 1024, lbaCount: 8 },
    { lbaBytes: 512, lbaCount: 0 },
    { lbaBytes: 512, lbaCount: 2 ** 53 },
    { lbaBytes: 512, lbaCount: 8, chunkBytes: 3 * 4096 },
    { lbaBytes: 512, lbaCount: 8, chunkBytes: 2048 },
  ]) {
    assert.throws(
      () => createMemoryBlockStore(bad as never),
      (e) => StorageError.is(e, "open-failed"),
    );
  }
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 8 });
  s.write(0, new Uint8Array(512).fill(1));
  await s.flush();
  s.close();
  s.close();
  assert.equal(s.allocatedChunkCount(), 0);
  assert.throws(
    () => s.read(0, new Uint8Array(512)),
    (e) => StorageError.is(e, "closed"),
  );
  await assert.rejects(s.flush(), (e) => StorageError.is(e, "closed"));
});

test("readInto fills only dst[dstOffset, +length) with what read returns, across chunks and holes", () => {
  const s = createMemoryBlockStore({ lbaBytes: 512, lbaCount: (16 * MiB) / 512, chunkBytes: 64 * 1024 });
  s.write(64 * 1024 - 4096, pattern(8192, 5)); // two chunks
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 256 * 1024 }),
      fc.integer({ min: 0, max: 70 * 1024 }),
      fc.integer({ min: 0, max: 4096 }),
      (at, lengthBytes, dstOffset) => {
        const expected = new Uint8Array(lengthBytes);
        s.read(at, expected);
        const dst = new Uint8Array(dstOffset + lengthBytes + 16).fill(0xee);
        s.readInto(at, dst, dstOffset, lengthBytes);
        assert.deepEqual(dst.subarray(dstOffset, dstOffset + lengthBytes), expected);
        assert.ok(
          dst.subarray(0, dstOffset).every((b) => b === 0xee),
          "bytes before untouched",
        );
        assert.ok(
          dst.subarray(dstOffset + lengthBytes).every((b) => b === 0xee),
          "bytes after untouched",
        );
      },
    ),
  );
  assert.throws(() => s.readInto(0, new Uint8Array(4096), 1, 4096), RangeError);
  assert.throws(() => s.readInto(16 * MiB - 512, new Uint8Array(4096), 0, 4096), StorageError);
});
