import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type ByteField, checkStructFields, structArbitrary } from "./codec-test-helpers.ts";
import {
  CW_AVAILABLE_SPARE,
  CW_TEMPERATURE,
  decodeSmartHealth,
  encodeSmartHealth,
  makeSmartHealth,
  SMART_HEALTH_BYTES,
  type SmartHealth,
} from "./log-smart-health.ts";

// NVMe Base 2.1 Figure "SMART / Health Information Log Page".
const FIELDS: readonly ByteField[] = [
  ["cw", 0, "u8"],
  ["ctemp", 1, "u16"],
  ["avsp", 3, "u8"],
  ["avspt", 4, "u8"],
  ["pused", 5, "u8"],
  ["egcws", 6, "u8"],
  ["dur", 32, "u128"],
  ["duw", 48, "u128"],
  ["hrc", 64, "u128"],
  ["hwc", 80, "u128"],
  ["cbt", 96, "u128"],
  ["pwrc", 112, "u128"],
  ["poh", 128, "u128"],
  ["upl", 144, "u128"],
  ["mdie", 160, "u128"],
  ["neile", 176, "u128"],
  ["wctt", 192, "u32"],
  ["cctt", 196, "u32"],
  ["tmt1tc", 216, "u32"],
  ["tmt2tc", 220, "u32"],
  ["ttftmt1", 224, "u32"],
  ["ttftmt2", 228, "u32"],
];

test("SMART / Health log is 512 bytes and every field sits at its spec offset", () => {
  assert.equal(SMART_HEALTH_BYTES, 512);
  assert.deepEqual([CW_AVAILABLE_SPARE, CW_TEMPERATURE], [1, 2]);
  checkStructFields({
    size: 512,
    make: () => makeSmartHealth(),
    encode: (v) => encodeSmartHealth(v),
    decode: decodeSmartHealth,
    fields: FIELDS,
    except: ["tsen"],
  });
});

test("temperature sensors 1–8 are u16 from byte 200", () => {
  const tsen = [0x0101, 0x0202, 0x0303, 0x0404, 0x0505, 0x0606, 0x0707, 0x0808];
  const b = encodeSmartHealth(makeSmartHealth({ tsen }));
  const expected = new Uint8Array(512);
  tsen.forEach((t, i) => {
    expected[200 + 2 * i] = t & 0xff;
    expected[201 + 2 * i] = t >> 8;
  });
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeSmartHealth(b).tsen, tsen);
});

test("SMART / Health round-trips (property)", () => {
  const tsen = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
  fc.assert(
    fc.property(structArbitrary(FIELDS), tsen, (r, t) => {
      const v = { ...makeSmartHealth(), ...r, tsen: t } as SmartHealth;
      assert.deepEqual(decodeSmartHealth(encodeSmartHealth(v)), v);
    }),
    { numRuns: 100 },
  );
});
