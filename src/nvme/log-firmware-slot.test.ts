import assert from "node:assert/strict";
import { test } from "node:test";
import {
  afi,
  afiActiveSlot,
  afiNextResetSlot,
  decodeFirmwareSlotInformation,
  encodeFirmwareSlotInformation,
  FIRMWARE_SLOT_BYTES,
} from "./log-firmware-slot.ts";

test("Firmware Slot log: 512 bytes, AFI @0, FRS1..7 of 8 ASCII bytes from byte 8", () => {
  assert.equal(FIRMWARE_SLOT_BYTES, 512);
  const b = encodeFirmwareSlotInformation({ afi: afi(1, 2), frs: ["1.0", "", "", "", "", "", "REV7"] });
  const expected = new Uint8Array(512);
  expected[0] = 0x21;
  expected.set([0x31, 0x2e, 0x30, 0x20, 0x20, 0x20, 0x20, 0x20], 8);
  expected.set([0x52, 0x45, 0x56, 0x37, 0x20, 0x20, 0x20, 0x20], 56);
  assert.deepEqual(b, expected, "empty slots are all zero bytes");
  const d = decodeFirmwareSlotInformation(b);
  assert.deepEqual(d, { afi: 0x21, frs: ["1.0", "", "", "", "", "", "REV7"] });
  assert.equal(afiActiveSlot(d.afi), 1);
  assert.equal(afiNextResetSlot(d.afi), 2);
  assert.throws(() => encodeFirmwareSlotInformation({ afi: 1, frs: Array(8).fill("x") }), RangeError);
});
