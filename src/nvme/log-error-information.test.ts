import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type ByteField, checkStructFields, structArbitrary } from "./codec-test-helpers.ts";
import {
  decodeErrorInformationEntry,
  decodeErrorInformationLog,
  ERROR_INFORMATION_ENTRY_BYTES,
  type ErrorInformationEntry,
  encodeErrorInformationEntry,
  encodeErrorInformationLog,
  makeErrorInformationEntry,
  pel,
  pelBit,
  pelByte,
} from "./log-error-information.ts";

// NVMe Base 2.1 Figure "Error Information Log Entry Data Structure" (status / phase tested below).
const FIELDS: readonly ByteField[] = [
  ["errorCount", 0, "u64"],
  ["sqid", 8, "u16"],
  ["cid", 10, "u16"],
  ["pel", 14, "u16"],
  ["lba", 16, "u64"],
  ["nsid", 24, "u32"],
  ["vsia", 28, "u8"],
  ["trtype", 29, "u8"],
  ["csi", 30, "u8"],
  ["opc", 31, "u8"],
  ["commandSpecificInfo", 32, "u64"],
  ["transportTypeSpecificInfo", 40, "u16"],
  ["logPageVersion", 63, "u8"],
];

test("Error Information entry is 64 bytes and every field sits at its spec offset", () => {
  assert.equal(ERROR_INFORMATION_ENTRY_BYTES, 64);
  checkStructFields({
    size: 64,
    make: () => makeErrorInformationEntry(),
    encode: (v) => encodeErrorInformationEntry(v),
    decode: decodeErrorInformationEntry,
    fields: FIELDS,
    except: ["pt", "status"],
  });
});

test("Status Field word @12: phase tag bit 0, status bits 15:1; PEL byte/bit", () => {
  const b = encodeErrorInformationEntry(
    makeErrorInformationEntry({ pt: 1, status: 0x4002, pel: pel(44, 3) }),
  );
  assert.equal(new DataView(b.buffer).getUint16(12, true), (0x4002 << 1) | 1);
  assert.deepEqual([...b.subarray(14, 16)], [44, 3]);
  const d = decodeErrorInformationEntry(b);
  assert.equal(d.pt, 1);
  assert.equal(d.status, 0x4002);
  assert.equal(pelByte(d.pel), 44);
  assert.equal(pelBit(d.pel), 3);
});

test("the log holds ELPE + 1 entries of 64 bytes", () => {
  const e = makeErrorInformationEntry({ errorCount: 7n, sqid: 1, cid: 2 });
  const b = encodeErrorInformationLog([e], 4);
  assert.equal(b.byteLength, 256);
  const d = decodeErrorInformationLog(b);
  assert.equal(d.length, 4);
  assert.deepEqual(d[0], e);
  assert.equal(d[1]?.errorCount, 0n);
  assert.throws(() => encodeErrorInformationLog([e, e], 1), RangeError);
});

test("error entry round-trips (property)", () => {
  const extra = fc.record({
    pt: fc.integer({ min: 0, max: 1 }),
    status: fc.integer({ min: 0, max: 0x7fff }),
  });
  fc.assert(
    fc.property(structArbitrary(FIELDS), extra, (r, x) => {
      const v = { ...makeErrorInformationEntry(), ...r, ...x } as ErrorInformationEntry;
      assert.deepEqual(decodeErrorInformationEntry(encodeErrorInformationEntry(v)), v);
    }),
    { numRuns: 100 },
  );
});
