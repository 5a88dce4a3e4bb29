import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { crc32c } from "./crc32c.ts";

const ascii = (s: string) => new TextEncoder().encode(s);

/** Bit-at-a-time reference, independent of the tables. */
function crc32cBitwise(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

test("CRC-32C check value and published vectors (RFC 3720 B.4)", () => {
  assert.equal(crc32c(ascii("123456789")), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
});

test("property: slice-by-8 equals the bitwise reference; chaining equals concatenation", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (data, cutSeed) => {
      const whole = crc32c(data);
      assert.equal(whole, crc32cBitwise(data));
      const cut = data.length === 0 ? 0 : cutSeed % (data.length + 1);
      assert.equal(crc32c(data.subarray(cut), crc32c(data.subarray(0, cut))), whole);
      assert.equal(crc32c(data, crc32c(data, 0, 0, cut), cut), whole);
    }),
    { numRuns: 500 },
  );
});
