import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { checkDwordFields } from "./codec-test-helpers.ts";
import {
  DSM_RANGE_BYTES,
  decodeDatasetManagement,
  decodeDsmRanges,
  decodeNvmIo,
  decodeSglDescriptor,
  decodeWriteZeroes,
  encodeDatasetManagement,
  encodeDsmRanges,
  encodeNvmIo,
  encodeSglDescriptor,
  encodeWriteZeroes,
  makeNvmIo,
  SGL_DESCRIPTOR_BYTES,
  SglDescriptorSubtype,
  SglDescriptorType,
} from "./nvm-commands.ts";

test("Read / Write / Compare fields: NLB CDW12 15:0, DTYPE 23:20, STC 24, PRINFO 29:26, FUA 30, LR 31, …", () => {
  checkDwordFields({
    base: makeNvmIo({ slba: 0, nlb: 0 }),
    encode: encodeNvmIo,
    decode: decodeNvmIo,
    fields: [
      ["nlb", "cdw12", 0, 16],
      ["dtype", "cdw12", 20, 4],
      ["stc", "cdw12", 24, 1, "bool"],
      ["prinfo", "cdw12", 26, 4],
      ["fua", "cdw12", 30, 1, "bool"],
      ["lr", "cdw12", 31, 1, "bool"],
      ["dsm", "cdw13", 0, 8],
      ["dspec", "cdw13", 16, 16],
      ["ilbrt", "cdw14", 0, 32],
      ["lbat", "cdw15", 0, 16],
      ["lbatm", "cdw15", 16, 16],
    ],
    except: ["slba"],
  });
  const c = encodeNvmIo(makeNvmIo({ slba: 0x0000_0001_0000_0002, nlb: 7 }));
  assert.equal(c.cdw10, 2);
  assert.equal(c.cdw11, 1);
  assert.equal(c.cdw12, 7);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (slba) => {
      assert.equal(decodeNvmIo(encodeNvmIo(makeNvmIo({ slba, nlb: 0 }))).slba, slba);
    }),
  );
  assert.equal(decodeNvmIo({ cdw11: 0xffffffff }).slba, Number.MAX_SAFE_INTEGER);
});

test("Write Zeroes: NLB, NSZ 23, STC 24, DEAC 25, PRINFO 29:26, FUA 30, LR 31", () => {
  checkDwordFields({
    base: decodeWriteZeroes({}),
    encode: encodeWriteZeroes,
    decode: decodeWriteZeroes,
    fields: [
      ["nlb", "cdw12", 0, 16],
      ["nsz", "cdw12", 23, 1, "bool"],
      ["stc", "cdw12", 24, 1, "bool"],
      ["deac", "cdw12", 25, 1, "bool"],
      ["prinfo", "cdw12", 26, 4],
      ["fua", "cdw12", 30, 1, "bool"],
      ["lr", "cdw12", 31, 1, "bool"],
      ["ilbrt", "cdw14", 0, 32],
      ["lbat", "cdw15", 0, 16],
      ["lbatm", "cdw15", 16, 16],
    ],
    except: ["slba"],
  });
});

test("Dataset Management: NR CDW10 7:0, IDR/IDW/AD CDW11 0/1/2; 16-byte ranges", () => {
  checkDwordFields({
    base: { nr: 0, idr: false, idw: false, ad: false },
    encode: encodeDatasetManagement,
    decode: decodeDatasetManagement,
    fields: [
      ["nr", "cdw10", 0, 8],
      ["idr", "cdw11", 0, 1, "bool"],
      ["idw", "cdw11", 1, 1, "bool"],
      ["ad", "cdw11", 2, 1, "bool"],
    ],
  });
  assert.equal(DSM_RANGE_BYTES, 16);
  const ranges = [
    { cattr: 0x01020304, lengthLbas: 0x05060708, slba: 0x0000_0a0b_0c0d_0e0f },
    { cattr: 0, lengthLbas: 8, slba: 100 },
  ];
  const b = encodeDsmRanges(ranges);
  assert.deepEqual(
    [...b.subarray(0, 16)],
    [4, 3, 2, 1, 8, 7, 6, 5, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0, 0],
  );
  assert.deepEqual(decodeDsmRanges(b, 2), ranges);
  assert.deepEqual(decodeDsmRanges(b, 256), ranges);
  assert.throws(() => encodeDsmRanges(Array(257).fill(ranges[1])), RangeError);
});

test("SGL descriptor: address @0, length @8, bytes 12–14 reserved, identifier @15 (type 7:4, subtype 3:0)", () => {
  assert.equal(SGL_DESCRIPTOR_BYTES, 16);
  assert.deepEqual(
    [SglDescriptorType.DataBlock, SglDescriptorType.Segment, SglDescriptorType.LastSegment],
    [0, 2, 3],
  );
  const d = {
    address: 0x0000_0102_0304_0506,
    length: 0x0708090a,
    type: SglDescriptorType.LastSegment,
    subtype: SglDescriptorSubtype.Offset,
  };
  const b = encodeSglDescriptor(d);
  assert.deepEqual([...b], [6, 5, 4, 3, 2, 1, 0, 0, 0x0a, 0x09, 0x08, 0x07, 0, 0, 0, 0x31]);
  assert.deepEqual(decodeSglDescriptor(b), d);
  const dirty = new Uint8Array(16).fill(0xff);
  encodeSglDescriptor({ address: 0, length: 0, type: 0, subtype: 0 }, dirty);
  assert.ok(dirty.every((x) => x === 0));
});
