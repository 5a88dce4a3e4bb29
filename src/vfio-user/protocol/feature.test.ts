import assert from "node:assert/strict";
import { test } from "node:test";
import { DeviceFeatureFlag, Errno } from "./constants.ts";
import {
  DEVICE_FEATURE_BYTES,
  decodeDeviceFeatureReply,
  decodeDeviceFeatureRequest,
  encodeDeviceFeature,
  featureIndex,
} from "./feature.ts";
import { isDecodeError } from "./wire.ts";

test("DEVICE_FEATURE envelope: argsz u32, flags u32, data (libvfio-user SET PRE_COPY bytes)", () => {
  assert.equal(DEVICE_FEATURE_BYTES, 8);
  const data = Uint8Array.of(6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff);
  const p = encodeDeviceFeature({ flags: DeviceFeatureFlag.SET | 2, data });
  assert.deepEqual([...p], [0x10, 0, 0, 0, 0x02, 0, 0x02, 0, 6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const r = decodeDeviceFeatureRequest(p);
  assert.ok(!isDecodeError(r));
  assert.equal(r.argsz, 16);
  assert.equal(featureIndex(r.flags), 2);
  assert.deepEqual([...r.data], [...data]);
});

test("DEVICE_FEATURE request validation", () => {
  const bad = (flags: number, argsz = 8) => decodeDeviceFeatureRequest(encodeDeviceFeature({ argsz, flags }));
  for (const flags of [
    1 /* no op */,
    DeviceFeatureFlag.GET | DeviceFeatureFlag.SET | 1,
    (1 << 19) | DeviceFeatureFlag.GET,
  ]) {
    const r = bad(flags);
    assert.ok(isDecodeError(r) && r.errno === Errno.EINVAL, `0x${flags.toString(16)}`);
  }
  assert.ok(!isDecodeError(bad(DeviceFeatureFlag.GET | DeviceFeatureFlag.SET | DeviceFeatureFlag.PROBE | 6)));
  assert.ok(isDecodeError(bad(DeviceFeatureFlag.GET | 1, 4)));
  assert.ok(isDecodeError(decodeDeviceFeatureRequest(new Uint8Array(7))));
  assert.ok(isDecodeError(decodeDeviceFeatureReply(new Uint8Array(7))));
});
