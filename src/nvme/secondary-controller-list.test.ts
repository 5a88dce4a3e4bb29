import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeSecondaryControllerList,
  encodeSecondaryControllerList,
  SCS_ONLINE,
  SECONDARY_CONTROLLER_ENTRY_BYTES,
  SECONDARY_CONTROLLER_LIST_BYTES,
  SECONDARY_CONTROLLER_LIST_MAX,
} from "./secondary-controller-list.ts";

test("Secondary Controller List: NUMID @0, 32-byte entries from byte 32, fields in place", () => {
  assert.equal(SECONDARY_CONTROLLER_LIST_BYTES, 4096);
  assert.equal(SECONDARY_CONTROLLER_ENTRY_BYTES, 32);
  assert.equal(SECONDARY_CONTROLLER_LIST_MAX, 127);
  assert.equal(SCS_ONLINE, 1);
  const e0 = { scid: 0x0102, pcid: 0x0304, scs: 1, vfn: 0x0506, nvq: 0x0708, nvi: 0x090a };
  const e1 = { scid: 0x1112, pcid: 0x1314, scs: 0, vfn: 0x1516, nvq: 0x1718, nvi: 0x191a };
  const b = encodeSecondaryControllerList([e0, e1]);
  const expected = new Uint8Array(4096);
  expected[0] = 2;
  expected.set([0x02, 0x01, 0x04, 0x03, 0x01, 0, 0, 0, 0x06, 0x05, 0x08, 0x07, 0x0a, 0x09], 32);
  expected.set([0x12, 0x11, 0x14, 0x13, 0x00, 0, 0, 0, 0x16, 0x15, 0x18, 0x17, 0x1a, 0x19], 64);
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeSecondaryControllerList(b), [e0, e1]);
});

test("127 entries fit exactly; 128 is our bug; NUMID above 127 is capped on decode", () => {
  const entries = Array.from({ length: 127 }, (_, i) => ({
    scid: i + 2,
    pcid: 1,
    scs: i % 2,
    vfn: i + 1,
    nvq: 2,
    nvi: 1,
  }));
  const b = encodeSecondaryControllerList(entries);
  assert.equal(32 + 127 * 32, 4096);
  assert.deepEqual(decodeSecondaryControllerList(b), entries);
  assert.throws(() => encodeSecondaryControllerList([...entries, entries[0]!]), RangeError);
  b[0] = 255;
  assert.equal(decodeSecondaryControllerList(b).length, 127);
});

test("secondary controller list round-trips (property)", () => {
  const u16 = fc.integer({ min: 0, max: 0xffff });
  const entry = fc.record(
    { scid: u16, pcid: u16, scs: fc.integer({ min: 0, max: 255 }), vfn: u16, nvq: u16, nvi: u16 },
    { noNullPrototype: true },
  );
  fc.assert(
    fc.property(fc.array(entry, { maxLength: 127 }), (list) => {
      assert.deepEqual(decodeSecondaryControllerList(encodeSecondaryControllerList(list)), list);
    }),
    { numRuns: 50 },
  );
});
