import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeNsIdDescriptors,
  encodeNsIdDescriptors,
  NIDL_FOR_TYPE,
  Nidt,
  NS_ID_DESCRIPTORS_BYTES,
} from "./ns-id-descriptors.ts";

const eui64 = Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const nguid = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const uuid = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

test("descriptors: NIDT @0, NIDL @1, NID @4, packed back to back, zero terminated", () => {
  assert.equal(NS_ID_DESCRIPTORS_BYTES, 4096);
  assert.deepEqual(NIDL_FOR_TYPE, { 1: 8, 2: 16, 3: 16, 4: 1 });
  const list = [
    { nidt: Nidt.Eui64, nid: eui64 },
    { nidt: Nidt.Nguid, nid: nguid },
    { nidt: Nidt.Uuid, nid: uuid },
    { nidt: Nidt.Csi, nid: Uint8Array.of(0) },
  ];
  const b = encodeNsIdDescriptors(list);
  assert.equal(b.byteLength, 4096);
  const expected = new Uint8Array(4096);
  expected.set([1, 8, 0, 0, ...eui64], 0);
  expected.set([2, 16, 0, 0, ...nguid], 12);
  expected.set([3, 16, 0, 0, ...uuid], 32);
  expected.set([4, 1, 0, 0, 0], 52);
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeNsIdDescriptors(b), list);
});

test("wrong NID length for a defined type, or NIDT 0, is our bug", () => {
  assert.throws(() => encodeNsIdDescriptors([{ nidt: Nidt.Uuid, nid: eui64 }]), RangeError);
  assert.throws(() => encodeNsIdDescriptors([{ nidt: 0, nid: eui64 }]), RangeError);
});

test("decode stops at a descriptor running past the buffer and keeps unknown types", () => {
  const b = new Uint8Array(4096);
  // 15 descriptors of an unknown type with 255-byte NIDs (259 bytes each), then one that overruns.
  for (let i = 0; i < 16; i++) b.set([9, 255, 0, 0, i + 1], i * 259);
  const d = decodeNsIdDescriptors(b);
  assert.equal(d.length, 15);
  assert.equal(d[14]?.nidt, 9);
  assert.equal(d[14]?.nid.byteLength, 255);
  assert.equal(d[14]?.nid[0], 15);
});

test("descriptor lists round-trip and any bytes decode without throwing (property)", () => {
  const desc = fc.oneof(
    fc.uint8Array({ minLength: 8, maxLength: 8 }).map((nid) => ({ nidt: 1, nid })),
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((nid) => ({ nidt: 2, nid })),
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((nid) => ({ nidt: 3, nid })),
    fc.uint8Array({ minLength: 1, maxLength: 1 }).map((nid) => ({ nidt: 4, nid })),
  );
  fc.assert(
    fc.property(fc.array(desc, { maxLength: 20 }), (list) => {
      assert.deepEqual(decodeNsIdDescriptors(encodeNsIdDescriptors(list)), list);
    }),
    { numRuns: 100 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
      decodeNsIdDescriptors(raw);
    }),
    { numRuns: 200 },
  );
});
