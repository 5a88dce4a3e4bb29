import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  decodeSupportedControllerStateFormats,
  encodeSupportedControllerStateFormats,
  SUPPORTED_CONTROLLER_STATE_FORMATS_BYTES,
} from "./supported-controller-state-formats.ts";

test("CNS 20h: NV @0, NUUID @1, NV u16 versions from 2, then 16-byte UUIDs", () => {
  assert.equal(SUPPORTED_CONTROLLER_STATE_FORMATS_BYTES, 4096);
  const uuid = Uint8Array.from({ length: 16 }, (_, i) => 0xc0 + i);
  const b = encodeSupportedControllerStateFormats({ versions: [0x0001, 0x0203], uuids: [uuid] });
  const expected = new Uint8Array(4096);
  expected.set([2, 1, 0x01, 0x00, 0x03, 0x02, ...uuid], 0);
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeSupportedControllerStateFormats(b), { versions: [1, 0x0203], uuids: [uuid] });
  assert.throws(
    () => encodeSupportedControllerStateFormats({ versions: [], uuids: [new Uint8Array(15)] }),
    RangeError,
  );
  assert.throws(
    () =>
      encodeSupportedControllerStateFormats({
        versions: Array(8).fill(1),
        uuids: Array(255).fill(new Uint8Array(16)),
      }),
    RangeError,
  );
});

test("round-trips, and counts past the buffer are cut, not thrown (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 }),
      fc.array(fc.uint8Array({ minLength: 16, maxLength: 16 }), { maxLength: 40 }),
      (versions, uuids) => {
        const v = { versions, uuids };
        assert.deepEqual(decodeSupportedControllerStateFormats(encodeSupportedControllerStateFormats(v)), v);
      },
    ),
    { numRuns: 50 },
  );
  const d = decodeSupportedControllerStateFormats(Uint8Array.of(3, 2, 1, 0));
  assert.deepEqual(d, { versions: [1], uuids: [] });
  assert.deepEqual(decodeSupportedControllerStateFormats(new Uint8Array(0)), { versions: [], uuids: [] });
});
