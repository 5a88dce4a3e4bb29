import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { crc32c } from "./crc32c.ts";

/** Bit-at-a-time reference, independent of the table code. */
function reference(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

test("crc32c check value of '123456789' is 0xE3069283 (RFC 3720 B.4)", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
});

test("crc32c of 32 zero bytes is 0x8A9136AA (RFC 3720 B.4)", () => {
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(0)), 0);
});

test("crc32c equals the bitwise reference and can be continued piecewise", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(300), (data, cutRaw) => {
      const cut = cutRaw % (data.length + 1);
      const whole = crc32c(data);
      assert.equal(whole, reference(data));
      assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), whole);
    }),
    { numRuns: 200 },
  );
});
