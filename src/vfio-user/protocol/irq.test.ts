import assert from "node:assert/strict";
import { test } from "node:test";
import { Errno, SetIrqsFlag } from "./constants.ts";
import {
  decodeIrqInfo,
  decodeSetIrqs,
  encodeIrqInfo,
  encodeSetIrqs,
  IRQ_INFO_BYTES,
  SET_IRQS_BYTES,
} from "./irq.ts";
import { isDecodeError } from "./wire.ts";

test("IRQ_INFO is 16 bytes: argsz, flags, index, count", () => {
  assert.equal(IRQ_INFO_BYTES, 16);
  const p = encodeIrqInfo({ argsz: 16, flags: 0xb, index: 2, count: 64 });
  assert.deepEqual([...p], [16, 0, 0, 0, 0xb, 0, 0, 0, 2, 0, 0, 0, 64, 0, 0, 0]);
  assert.deepEqual(decodeIrqInfo(p), { argsz: 16, flags: 0xb, index: 2, count: 64 });
  const bad = decodeIrqInfo(encodeIrqInfo({ argsz: 15, flags: 0, index: 0, count: 0 }));
  assert.ok(isDecodeError(bad) && bad.errno === Errno.EINVAL);
});

test("SET_IRQS is 20 bytes + bool data; argsz = request size", () => {
  assert.equal(SET_IRQS_BYTES, 20);
  const p = encodeSetIrqs({ flags: 0x24, index: 0, start: 0, count: 1 });
  assert.deepEqual([...p], [20, 0, 0, 0, 0x24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.deepEqual(decodeSetIrqs(p), { argsz: 20, flags: 0x24, index: 0, start: 0, count: 1 });
  const b = encodeSetIrqs({
    flags: SetIrqsFlag.DATA_BOOL | SetIrqsFlag.ACTION_MASK,
    index: 2,
    start: 1,
    count: 3,
    bools: Uint8Array.of(1, 0, 1),
  });
  assert.equal(b.byteLength, 23);
  const d = decodeSetIrqs(b);
  assert.ok(!isDecodeError(d));
  assert.deepEqual([...(d.bools ?? [])], [1, 0, 1]);
});

test("SET_IRQS validation: one DATA and one ACTION bit, argsz, bool data length", () => {
  const bad = (flags: number, count = 1) =>
    decodeSetIrqs(encodeSetIrqs({ flags, index: 0, start: 0, count }));
  for (const flags of [0, 0x20, 0x04, 0x25 /* two data */, 0x34 /* two actions */, 0x64 /* unknown bit */]) {
    const r = bad(flags);
    assert.ok(isDecodeError(r) && r.errno === Errno.EINVAL, `flags 0x${flags.toString(16)}`);
  }
  const noBools = bad(SetIrqsFlag.DATA_BOOL | SetIrqsFlag.ACTION_TRIGGER, 4);
  assert.ok(isDecodeError(noBools) && noBools.reason === "set-irqs-bool-data");
  const p = encodeSetIrqs({ flags: 0x21, index: 0, start: 0, count: 0 });
  p[0] = 40; // argsz beyond the payload
  assert.ok(isDecodeError(decodeSetIrqs(p)));
  assert.ok(isDecodeError(decodeSetIrqs(p.subarray(0, 19))));
  const overflow = decodeSetIrqs(encodeSetIrqs({ flags: 0x21, index: 0, start: 0xffffffff, count: 2 }));
  assert.ok(isDecodeError(overflow));
});
