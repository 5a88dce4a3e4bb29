import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "./constants.ts";
import {
  DMA_ACCESS_BYTES,
  DMA_MAP_BYTES,
  DMA_UNMAP_BYTES,
  decodeDmaMap,
  decodeDmaReadReply,
  decodeDmaReadRequest,
  decodeDmaUnmap,
  decodeDmaWriteReply,
  decodeDmaWriteRequest,
  encodeDmaAccess,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeDmaWriteRequest,
} from "./dma.ts";
import { isDecodeError } from "./wire.ts";

function errnoOf(r: unknown): number | undefined {
  return isDecodeError(r) ? r.errno : undefined;
}

test("DMA_MAP is 32 bytes: argsz, flags, offset, address, size", () => {
  const p = encodeDmaMap({ flags: 3, offset: 0x100000, address: 0x1_0000_0000, sizeBytes: 0xff00000 });
  assert.equal(DMA_MAP_BYTES, 32);
  assert.deepEqual(
    [...p],
    [
      32, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0xf0, 0x0f, 0, 0, 0,
      0,
    ],
  );
  assert.deepEqual(decodeDmaMap(p), {
    argsz: 32,
    flags: 3,
    offset: 0x100000,
    address: 0x1_0000_0000,
    sizeBytes: 0xff00000,
  });
});

test("DMA_MAP validation", () => {
  const ok = encodeDmaMap({ flags: 1, offset: 0, address: 0x1000, sizeBytes: 0x1000 });
  assert.equal(errnoOf(decodeDmaMap(ok.subarray(0, 31))), Errno.EINVAL);
  const argsz = ok.slice();
  argsz[0] = 24;
  assert.equal(errnoOf(decodeDmaMap(argsz)), Errno.EINVAL);
  for (const flags of [0, 4, 8, 0x80000000]) {
    assert.equal(
      errnoOf(decodeDmaMap(encodeDmaMap({ flags, offset: 0, address: 0, sizeBytes: 1 }))),
      Errno.EINVAL,
    );
  }
  assert.equal(
    errnoOf(decodeDmaMap(encodeDmaMap({ flags: 3, offset: 0, address: 0, sizeBytes: 0 }))),
    Errno.EINVAL,
  );
  const huge = ok.slice();
  huge.fill(0xff, 16, 24); // address 2^64 - 1
  assert.equal(errnoOf(decodeDmaMap(huge)), Errno.EINVAL);
  // a longer request (future fields) is accepted
  const longer = new Uint8Array(40);
  longer.set(ok);
  longer[0] = 40;
  assert.ok(!isDecodeError(decodeDmaMap(longer)));
});

test("DMA_UNMAP is 24 bytes and validates UNMAP_ALL and the dirty-bitmap flag", () => {
  const p = encodeDmaUnmap({ flags: 0, address: 0xfffc0000, sizeBytes: 0x40000 });
  assert.equal(DMA_UNMAP_BYTES, 24);
  assert.deepEqual([...p.subarray(0, 8)], [24, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeDmaUnmap(p), { argsz: 24, flags: 0, address: 0xfffc0000, sizeBytes: 0x40000 });
  assert.deepEqual(decodeDmaUnmap(encodeDmaUnmap({ flags: 2, address: 0, sizeBytes: 0 })), {
    argsz: 24,
    flags: 2,
    address: 0,
    sizeBytes: 0,
  });
  assert.equal(
    errnoOf(decodeDmaUnmap(encodeDmaUnmap({ flags: 2, address: 0x1000, sizeBytes: 0 }))),
    Errno.EINVAL,
  );
  assert.equal(
    errnoOf(decodeDmaUnmap(encodeDmaUnmap({ flags: 1, address: 0, sizeBytes: 4096 }))),
    Errno.ENOTSUP,
  );
  assert.equal(
    errnoOf(decodeDmaUnmap(encodeDmaUnmap({ flags: 4, address: 0, sizeBytes: 4096 }))),
    Errno.EINVAL,
  );
  assert.equal(errnoOf(decodeDmaUnmap(encodeDmaUnmap({ flags: 0, address: 0, sizeBytes: 0 }))), Errno.EINVAL);
  assert.equal(
    errnoOf(decodeDmaUnmap(encodeDmaUnmap({ argsz: 16, flags: 0, address: 0, sizeBytes: 1 }))),
    Errno.EINVAL,
  );
  assert.equal(errnoOf(decodeDmaUnmap(p.subarray(0, 23))), Errno.EINVAL);
});

test("DMA_READ / DMA_WRITE: address u64, count u64, data at payload offset 16", () => {
  assert.equal(DMA_ACCESS_BYTES, 16);
  const req = encodeDmaAccess(0x2000, 16);
  assert.deepEqual([...req], [0, 0x20, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeDmaReadRequest(req), { address: 0x2000, count: 16 });
  assert.equal(errnoOf(decodeDmaReadRequest(new Uint8Array(17))), Errno.EINVAL);
  const data = Uint8Array.from({ length: 16 }, (_, i) => i);
  const reply = encodeDmaAccess(0x2000, 16, data);
  assert.equal(reply.byteLength, 32);
  const r = decodeDmaReadReply(reply);
  assert.ok(!isDecodeError(r));
  assert.deepEqual([...r.data], [...data]);
  assert.equal(errnoOf(decodeDmaReadReply(reply.subarray(0, 31))), Errno.EINVAL);
  const w = decodeDmaWriteRequest(encodeDmaWriteRequest(0x2000, data));
  assert.ok(!isDecodeError(w));
  assert.equal(w.count, 16);
  assert.equal(
    errnoOf(decodeDmaWriteRequest(encodeDmaWriteRequest(0x2000, data).subarray(0, 31))),
    Errno.EINVAL,
  );
});

test("DMA_WRITE reply is parsed leniently: 16 bytes, 12 bytes (u32 count) or a bare header", () => {
  assert.deepEqual(decodeDmaWriteReply(encodeDmaAccess(0x2000, 16)), { address: 0x2000, count: 16 });
  assert.deepEqual(decodeDmaWriteReply(encodeDmaAccess(0x2000, 16).subarray(0, 12)), {
    address: 0x2000,
    count: 16,
  });
  assert.deepEqual(decodeDmaWriteReply(new Uint8Array(0)), {});
  assert.equal(errnoOf(decodeDmaWriteReply(new Uint8Array(8))), Errno.EINVAL);
});
