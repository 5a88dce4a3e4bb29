import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno, RegionCapId, RegionFlag } from "./constants.ts";
import {
  decodeRegionInfoReply,
  decodeRegionInfoRequest,
  decodeRegionReadReply,
  decodeRegionReadRequest,
  decodeRegionWriteRequest,
  decodeWriteMulti,
  decodeWriteMultiReply,
  encodeRegionAccess,
  encodeRegionInfoReply,
  encodeRegionInfoRequest,
  encodeWriteMulti,
  encodeWriteMultiReply,
  REGION_ACCESS_BYTES,
  REGION_INFO_BYTES,
  sparseMmapCap,
  WRITE_MULTI_ENTRY_BYTES,
} from "./region.ts";
import { isDecodeError } from "./wire.ts";

const rw = RegionFlag.READ | RegionFlag.WRITE;

test("REGION_INFO request is 32 bytes; longer requests (SPDK) are accepted", () => {
  assert.equal(REGION_INFO_BYTES, 32);
  const p = encodeRegionInfoRequest(7, 32);
  assert.deepEqual([...p.subarray(0, 12)], [32, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0]);
  assert.deepEqual(decodeRegionInfoRequest(p), { argsz: 32, index: 7 });
  const spdk = new Uint8Array(4064);
  new DataView(spdk.buffer).setUint32(0, 4064, true);
  assert.deepEqual(decodeRegionInfoRequest(spdk), { argsz: 4064, index: 0 });
  const small = decodeRegionInfoRequest(encodeRegionInfoRequest(0, 16));
  assert.ok(isDecodeError(small) && small.errno === Errno.EINVAL);
});

test("REGION_INFO reply with sparse mmap: libvfio-user's 0x3000 BAR example is argsz 80, flags 0xf, cap_offset 32", () => {
  const caps = [
    sparseMmapCap([
      { offset: 0, sizeBytes: 0x1000 },
      { offset: 0x2000, sizeBytes: 0x1000 },
    ]),
  ];
  const r = encodeRegionInfoReply(
    { flags: rw | RegionFlag.MMAP, index: 1, sizeBytes: 0x3000, offset: 0, caps },
    80,
  );
  assert.equal(r.truncated, false);
  assert.equal(r.argsz, 80);
  assert.equal(r.payload.byteLength, 80);
  const v = new DataView(r.payload.buffer);
  assert.equal(v.getUint32(0, true), 80);
  assert.equal(v.getUint32(4, true), 0xf);
  assert.equal(v.getUint32(12, true), 32);
  // cap header at 32: id 1, version 1, next 0; nr_areas 2
  assert.deepEqual([...r.payload.subarray(32, 44)], [1, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
  const d = decodeRegionInfoReply(r.payload);
  assert.ok(!isDecodeError(d));
  assert.deepEqual(d.caps, [
    {
      id: RegionCapId.SPARSE_MMAP,
      version: 1,
      areas: [
        { offset: 0, sizeBytes: 0x1000 },
        { offset: 0x2000, sizeBytes: 0x1000 },
      ],
    },
  ]);
  assert.equal(d.sizeBytes, 0x3000);
});

test("REGION_INFO reply truncated to the struct when argsz is too small", () => {
  const caps = [sparseMmapCap([{ offset: 0x1000, sizeBytes: 0x1000 }])];
  const r = encodeRegionInfoReply(
    { flags: rw | RegionFlag.MMAP, index: 0, sizeBytes: 0x4000, offset: 0, caps },
    32,
  );
  assert.equal(r.truncated, true);
  assert.equal(r.payload.byteLength, 32);
  const d = decodeRegionInfoReply(r.payload);
  assert.ok(!isDecodeError(d));
  assert.equal(d.argsz, 64);
  assert.equal(d.capOffset, 32, "where the chain will be, as QEMU's client requires with CAPS set");
  assert.equal(d.flags, 0xf);
  assert.deepEqual(d.caps, []);
});

test("REGION_INFO without caps clears CAPS; extra caps chain with next offsets", () => {
  const plain = encodeRegionInfoReply(
    { flags: rw | RegionFlag.CAPS, index: 7, sizeBytes: 256, offset: 0, caps: [] },
    32,
  );
  assert.equal(new DataView(plain.payload.buffer).getUint32(4, true), rw);
  const two = encodeRegionInfoReply(
    {
      flags: rw,
      index: 9,
      sizeBytes: 0x1000,
      offset: 0,
      caps: [
        sparseMmapCap([{ offset: 0, sizeBytes: 0x1000 }]),
        { id: 2, version: 1, body: Uint8Array.of(1, 0, 0, 0, 2, 0, 0, 0) },
      ],
    },
    4096,
  );
  const v = new DataView(two.payload.buffer);
  assert.equal(v.getUint32(32 + 4, true), 64); // next of the first cap
  const d = decodeRegionInfoReply(two.payload);
  assert.ok(!isDecodeError(d));
  assert.equal(d.caps.length, 2);
  assert.deepEqual(d.caps[1], { id: 2, version: 1, body: Uint8Array.of(1, 0, 0, 0, 2, 0, 0, 0) });
});

test("a looping or out-of-range capability chain is refused", () => {
  const r = encodeRegionInfoReply(
    {
      flags: rw,
      index: 0,
      sizeBytes: 0x1000,
      offset: 0,
      caps: [sparseMmapCap([{ offset: 0, sizeBytes: 0x1000 }])],
    },
    4096,
  );
  const loop = r.payload.slice();
  new DataView(loop.buffer).setUint32(36, 32, true); // next points to itself
  assert.ok(isDecodeError(decodeRegionInfoReply(loop)));
  const outside = r.payload.slice();
  new DataView(outside.buffer).setUint32(12, 1000, true);
  assert.ok(isDecodeError(decodeRegionInfoReply(outside)));
  const areas = r.payload.slice();
  new DataView(areas.buffer).setUint32(40, 1000, true); // nr_areas beyond the bytes
  assert.ok(isDecodeError(decodeRegionInfoReply(areas)));
});

test("REGION_READ/WRITE: offset u64, region u32, count u32 (+ data)", () => {
  assert.equal(REGION_ACCESS_BYTES, 16);
  const p = encodeRegionAccess({ offset: 0x1008, region: 0, count: 4 });
  assert.deepEqual([...p], [8, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);
  assert.deepEqual(decodeRegionReadRequest(p), { offset: 0x1008, region: 0, count: 4 });
  assert.ok(isDecodeError(decodeRegionReadRequest(new Uint8Array(17))));
  const w = encodeRegionAccess({ offset: 4, region: 7, count: 2 }, Uint8Array.of(0xaa, 0xbb));
  const d = decodeRegionWriteRequest(w);
  assert.ok(!isDecodeError(d));
  assert.deepEqual([...d.data], [0xaa, 0xbb]);
  assert.ok(isDecodeError(decodeRegionWriteRequest(w.subarray(0, 17))));
  const rr = decodeRegionReadReply(w);
  assert.ok(!isDecodeError(rr));
  assert.ok(isDecodeError(decodeRegionReadReply(w.subarray(0, 17))));
});

test("REGION_WRITE_MULTI: wr_cnt u64 + 24-byte entries with 8 data bytes", () => {
  assert.equal(WRITE_MULTI_ENTRY_BYTES, 24);
  const p = encodeWriteMulti([
    { offset: 0x1000, region: 0, count: 4, data: Uint8Array.of(1, 2, 3, 4) },
    { offset: 0x1004, region: 0, count: 8, data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8) },
  ]);
  assert.equal(p.byteLength, 8 + 48);
  const d = decodeWriteMulti(p);
  assert.ok(!isDecodeError(d));
  assert.equal(d.length, 2);
  assert.deepEqual([...d[0]!.data], [1, 2, 3, 4]);
  assert.equal(decodeWriteMultiReply(encodeWriteMultiReply(2)), 2);
  const zero = decodeWriteMulti(encodeWriteMulti([]));
  assert.ok(isDecodeError(zero));
  const big = p.slice();
  new DataView(big.buffer).setUint32(8 + 12, 9, true);
  assert.ok(isDecodeError(decodeWriteMulti(big)));
  assert.ok(isDecodeError(decodeWriteMulti(p.subarray(0, 40))));
});
