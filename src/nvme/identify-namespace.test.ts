import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type ByteField, checkStructFields, structArbitrary } from "./codec-test-helpers.ts";
import {
  bytesForLbads,
  decodeIdentifyNamespace,
  encodeFlbas,
  encodeIdentifyNamespace,
  flbasIndex,
  IDENTIFY_NAMESPACE_BYTES,
  type IdentifyNamespace,
  LBA_FORMATS,
  lbadsForBytes,
  makeIdentifyNamespace,
} from "./identify-namespace.ts";

// NVM Command Set Specification Figure "Identify Namespace Data Structure, NVM Command Set".
const FIELDS: readonly ByteField[] = [
  ["nsze", 0, "u64n"],
  ["ncap", 8, "u64n"],
  ["nuse", 16, "u64n"],
  ["nsfeat", 24, "u8"],
  ["nlbaf", 25, "u8"],
  ["flbas", 26, "u8"],
  ["mc", 27, "u8"],
  ["dpc", 28, "u8"],
  ["dps", 29, "u8"],
  ["nmic", 30, "u8"],
  ["rescap", 31, "u8"],
  ["fpi", 32, "u8"],
  ["dlfeat", 33, "u8"],
  ["nawun", 34, "u16"],
  ["nawupf", 36, "u16"],
  ["nacwu", 38, "u16"],
  ["nabsn", 40, "u16"],
  ["nabo", 42, "u16"],
  ["nabspf", 44, "u16"],
  ["noiob", 46, "u16"],
  ["nvmcap", 48, "u128"],
  ["npwg", 64, "u16"],
  ["npwa", 66, "u16"],
  ["npdg", 68, "u16"],
  ["npda", 70, "u16"],
  ["nows", 72, "u16"],
  ["mssrl", 74, "u16"],
  ["mcl", 76, "u32"],
  ["msrc", 80, "u8"],
  ["kpios", 81, "u8"],
  ["nulbaf", 82, "u8"],
  ["kpiodaag", 84, "u32"],
  ["anagrpid", 92, "u32"],
  ["nsattr", 99, "u8"],
  ["nvmsetid", 100, "u16"],
  ["endgid", 102, "u16"],
  ["nguid", 104, { bytes: 16 }],
  ["eui64", 120, { bytes: 8 }],
  ["vs", 3840, { bytes: 256 }],
];

test("Identify Namespace is 4096 bytes and every field sits at its spec offset", () => {
  assert.equal(IDENTIFY_NAMESPACE_BYTES, 4096);
  checkStructFields({
    size: 4096,
    make: () => makeIdentifyNamespace(),
    encode: (v) => encodeIdentifyNamespace(v),
    decode: decodeIdentifyNamespace,
    fields: FIELDS,
    except: ["lbaf"],
  });
});

test("64 LBA formats of 4 bytes {MS u16, LBADS u8, RP u8} from byte 128", () => {
  const zero = makeIdentifyNamespace();
  assert.equal(zero.lbaf.length, LBA_FORMATS);
  const lbaf = [...zero.lbaf];
  lbaf[0] = { ms: 0, lbads: 9, rp: 0 };
  lbaf[1] = { ms: 0x0108, lbads: 12, rp: 2 };
  lbaf[63] = { ms: 0xffff, lbads: 0x7f, rp: 3 };
  const b = encodeIdentifyNamespace({ ...zero, lbaf });
  const expected = new Uint8Array(4096);
  expected.set([0, 0, 9, 0, 0x08, 0x01, 12, 2], 128);
  expected.set([0xff, 0xff, 0x7f, 3], 128 + 63 * 4);
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeIdentifyNamespace(b).lbaf, lbaf);
});

test("NSZE beyond 2^53 decodes as MAX_SAFE_INTEGER", () => {
  const b = new Uint8Array(4096);
  b.fill(0xff, 0, 8);
  assert.equal(decodeIdentifyNamespace(b).nsze, Number.MAX_SAFE_INTEGER);
});

test("LBADS and FLBAS helpers", () => {
  assert.equal(lbadsForBytes(512), 9);
  assert.equal(lbadsForBytes(4096), 12);
  assert.throws(() => lbadsForBytes(1000), RangeError);
  assert.throws(() => lbadsForBytes(256), RangeError);
  assert.equal(bytesForLbads(9), 512);
  assert.equal(bytesForLbads(12), 4096);
  assert.equal(bytesForLbads(0), 0);
  assert.equal(encodeFlbas(1), 0x01);
  assert.equal(encodeFlbas(1, true), 0x11);
  assert.equal(encodeFlbas(0x25), 0x45);
  for (let i = 0; i < 64; i++) assert.equal(flbasIndex(encodeFlbas(i, i % 2 === 0)), i);
});

test("Identify Namespace round-trips (property)", () => {
  const lbaf = fc.array(
    fc.record(
      {
        ms: fc.integer({ min: 0, max: 0xffff }),
        lbads: fc.integer({ min: 0, max: 255 }),
        rp: fc.integer({ min: 0, max: 255 }),
      },
      { noNullPrototype: true },
    ),
    { minLength: 64, maxLength: 64 },
  );
  fc.assert(
    fc.property(structArbitrary(FIELDS), lbaf, (r, formats) => {
      const v = { ...makeIdentifyNamespace(), ...r, lbaf: formats } as IdentifyNamespace;
      assert.deepEqual(decodeIdentifyNamespace(encodeIdentifyNamespace(v)), v);
    }),
    { numRuns: 30 },
  );
});
