import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "./constants.ts";
import {
  decodeMigDataReadReply,
  decodeMigDataReadRequest,
  decodeMigDataWriteRequest,
  encodeMigData,
  MIG_DATA_BYTES,
} from "./mig-data.ts";
import { isDecodeError } from "./wire.ts";

test("MIG_DATA_READ/WRITE: argsz u32, size u32, data", () => {
  assert.equal(MIG_DATA_BYTES, 8);
  const req = encodeMigData({ sizeBytes: 1024 });
  assert.deepEqual([...req], [8, 4, 0, 0, 0, 4, 0, 0]);
  assert.deepEqual(decodeMigDataReadRequest(req), { argsz: 1032, sizeBytes: 1024, data: new Uint8Array(0) });
  const reply = encodeMigData({ sizeBytes: 3, data: Uint8Array.of(1, 2, 3) });
  assert.equal(reply.byteLength, 11);
  const r = decodeMigDataReadReply(reply);
  assert.ok(!isDecodeError(r));
  assert.deepEqual([...r.data], [1, 2, 3]);
  const w = decodeMigDataWriteRequest(encodeMigData({ argsz: 8, sizeBytes: 2, data: Uint8Array.of(9, 9) }));
  assert.ok(!isDecodeError(w));
  assert.deepEqual([...w.data], [9, 9]);
});

test("MIG_DATA validation", () => {
  const e = (r: unknown) => (isDecodeError(r) ? r.errno : 0);
  assert.equal(e(decodeMigDataReadRequest(encodeMigData({ argsz: 100, sizeBytes: 1024 }))), Errno.EINVAL);
  assert.equal(e(decodeMigDataReadRequest(new Uint8Array(9).fill(0))), Errno.EINVAL);
  assert.equal(e(decodeMigDataReadRequest(new Uint8Array(7))), Errno.EINVAL);
  assert.equal(
    e(decodeMigDataWriteRequest(encodeMigData({ sizeBytes: 3, data: Uint8Array.of(1, 2) }))),
    Errno.EINVAL,
  );
  assert.equal(
    e(decodeMigDataReadReply(encodeMigData({ sizeBytes: 3, data: Uint8Array.of(1, 2) }))),
    Errno.EINVAL,
  );
});
