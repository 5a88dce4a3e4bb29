import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CQE_BYTES, decodeCqe, decodeSqe, encodeCqe, encodeSqe, SQE_BYTES, SqeOffset } from "./sqe.ts";

test("SQE is 64 bytes and fields sit at the spec offsets", () => {
  assert.equal(SQE_BYTES, 64);
  assert.equal(SqeOffset.CID, 2);
  assert.equal(SqeOffset.NSID, 4);
  assert.equal(SqeOffset.MPTR, 16);
  assert.equal(SqeOffset.PRP1, 24);
  assert.equal(SqeOffset.PRP2, 32);
  assert.equal(SqeOffset.CDW10, 40);
  assert.equal(SqeOffset.CDW15, 60);
  const v = new DataView(new ArrayBuffer(64));
  encodeSqe(
    { opc: 0x02, psdt: 1, fuse: 0, cid: 0xbeef, nsid: 1, prp1: 0x1000, cdw10: 7, cdw15: 0xffffffff },
    v,
    0,
  );
  assert.equal(v.getUint8(0), 0x02);
  assert.equal(v.getUint8(1), 0x40);
  assert.equal(v.getUint16(2, true), 0xbeef);
  assert.equal(v.getUint32(4, true), 1);
  assert.equal(v.getUint32(24, true), 0x1000);
  assert.equal(v.getUint32(40, true), 7);
  assert.equal(v.getUint32(60, true), 0xffffffff);
});

test("CQE is 16 bytes; status and phase share the last word", () => {
  assert.equal(CQE_BYTES, 16);
  const v = new DataView(new ArrayBuffer(16));
  encodeCqe(v, 0, 0x11223344, 5, 7, 3, 0x1234, 1, 0x4002);
  assert.equal(v.getUint32(0, true), 0x11223344);
  assert.equal(v.getUint16(8, true), 7);
  assert.equal(v.getUint16(10, true), 3);
  assert.equal(v.getUint16(12, true), 0x1234);
  assert.equal(v.getUint16(14, true), (0x4002 << 1) | 1);
  assert.deepEqual(decodeCqe(v, 0), {
    dw0: 0x11223344,
    dw1: 5,
    sqhd: 7,
    sqid: 3,
    cid: 0x1234,
    phase: 1,
    status: 0x4002,
  });
});

test("SQE encode/decode round-trips (property)", () => {
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  fc.assert(
    fc.property(
      fc.record({
        opc: fc.integer({ min: 0, max: 255 }),
        fuse: fc.integer({ min: 0, max: 3 }),
        psdt: fc.integer({ min: 0, max: 2 }),
        cid: fc.integer({ min: 0, max: 0xffff }),
        nsid: u32,
        cdw2: u32,
        cdw3: u32,
        mptr: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
        prp1: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
        prp2: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
        cdw10: u32,
        cdw11: u32,
        cdw12: u32,
        cdw13: u32,
        cdw14: u32,
        cdw15: u32,
      }),
      (f) => {
        const v = new DataView(new ArrayBuffer(128));
        encodeSqe(f, v, 64);
        assert.deepEqual(decodeSqe(v, 64), { ...f });
      },
    ),
  );
});
