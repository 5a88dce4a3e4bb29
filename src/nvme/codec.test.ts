import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  ascii,
  asciiz,
  bit,
  bits,
  bytes,
  dataView,
  dwords,
  fit,
  flag,
  joinU64,
  pack,
  place,
  splitU64,
  target,
  u24,
  u64n,
  u128,
} from "./codec.ts";

test("u24, u64n and u128 are little endian", () => {
  const b = new Uint8Array(32);
  const v = dataView(b);
  u24(1).write(v, 0, 0x123456);
  assert.deepEqual([...b.subarray(0, 5)], [0, 0x56, 0x34, 0x12, 0]);
  assert.equal(u24(1).read(v, 0), 0x123456);
  u128(16).write(v, 0, 0x0102030405060708090a0b0c0d0e0f10n);
  assert.deepEqual([...b.subarray(16, 32)], [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  assert.equal(u128(16).read(v, 0), 0x0102030405060708090a0b0c0d0e0f10n);
  u64n(8).write(v, 0, 2 ** 40 + 5);
  assert.equal(u64n(8).read(v, 0), 2 ** 40 + 5);
  b.fill(0xff, 8, 16);
  assert.equal(u64n(8).read(v, 0), Number.MAX_SAFE_INTEGER);
});

test("ascii pads with spaces and trims on decode; asciiz pads with NUL; both reject bad strings", () => {
  const b = new Uint8Array(8);
  const v = dataView(b);
  ascii(0, 8).write(v, 0, "ab");
  assert.deepEqual([...b], [0x61, 0x62, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]);
  assert.equal(ascii(0, 8).read(v, 0), "ab");
  asciiz(0, 8).write(v, 0, "xyz");
  assert.deepEqual([...b], [0x78, 0x79, 0x7a, 0, 0, 0, 0, 0]);
  assert.equal(asciiz(0, 8).read(v, 0), "xyz");
  assert.equal(ascii(0, 8).read(v, 0), "xyz", "NUL padding is trimmed too");
  assert.throws(() => ascii(0, 8).write(v, 0, "123456789"), RangeError);
  assert.throws(() => asciiz(0, 8).write(v, 0, "a\nb"), RangeError);
  assert.throws(() => bytes(0, 4).write(v, 0, new Uint8Array(5)), RangeError);
});

test("fit zero-extends short input; target zeroes or allocates and rejects a short destination", () => {
  const short = Uint8Array.of(1, 2);
  assert.deepEqual([...fit(short, 4)], [1, 2, 0, 0]);
  const long = new Uint8Array(8);
  assert.equal(fit(long, 4), long);
  const dirty = new Uint8Array(6).fill(9);
  assert.equal(target(dirty, 4), dirty);
  assert.deepEqual([...dirty], [0, 0, 0, 0, 9, 9]);
  assert.equal(target(undefined, 3).byteLength, 3);
  assert.throws(() => target(new Uint8Array(2), 3), RangeError);
});

test("bit packing helpers", () => {
  assert.equal(place(0xff, 24, 8), 0xff000000);
  assert.equal(place(0x1ff, 0, 8), 0xff, "masked to width");
  assert.equal(bits(0xff000000, 24, 8), 0xff);
  assert.equal(flag(true, 31), 0x80000000);
  assert.equal(bit(0x80000000, 31), true);
  assert.equal(pack(flag(true, 31), place(1, 0, 1)), 0x80000001);
  assert.deepEqual(dwords({ cdw12: -1 }), {
    cdw10: 0,
    cdw11: 0,
    cdw12: 0xffffffff,
    cdw13: 0,
    cdw14: 0,
    cdw15: 0,
  });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
      const [lo, hi] = splitU64(n);
      assert.equal(joinU64(lo, hi), n);
    }),
  );
  assert.equal(joinU64(0, 0xffffffff), Number.MAX_SAFE_INTEGER);
});
