import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno } from "./constants.ts";
import {
  DEVICE_INFO_BYTES,
  decodeDeviceInfo,
  encodeDeviceInfo,
  encodeDeviceInfoRequest,
} from "./device-info.ts";
import { isDecodeError } from "./wire.ts";

test("DEVICE_GET_INFO is 16 bytes: argsz, flags, num_regions, num_irqs", () => {
  assert.equal(DEVICE_INFO_BYTES, 16);
  const p = encodeDeviceInfo({ argsz: 16, flags: 3, numRegions: 9, numIrqs: 5 });
  assert.deepEqual([...p], [16, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 5, 0, 0, 0]);
  assert.deepEqual(decodeDeviceInfo(p), { argsz: 16, flags: 3, numRegions: 9, numIrqs: 5 });
  assert.deepEqual([...encodeDeviceInfoRequest()], [16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test("DEVICE_GET_INFO refuses short payloads and argsz < 16", () => {
  const short = decodeDeviceInfo(new Uint8Array(15));
  assert.ok(isDecodeError(short) && short.errno === Errno.EINVAL);
  const small = decodeDeviceInfo(encodeDeviceInfoRequest(8));
  assert.ok(isDecodeError(small) && small.errno === Errno.EINVAL);
});
