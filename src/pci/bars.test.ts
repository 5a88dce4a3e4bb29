import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BarSet, checkBarSpecs } from "./bars.ts";
import { ConfigSpace } from "./config-space.ts";
import { PciError } from "./errors.ts";

function bars() {
  const cs = new ConfigSpace();
  const set = new BarSet(
    cs,
    [
      { index: 0, sizeBytes: 16 * 1024, prefetchable: false },
      { index: 4, sizeBytes: 8 * 2 ** 30, prefetchable: true },
    ],
    { baseOffset: 0x10, namePrefix: "bar" },
  );
  return { cs, set };
}

describe("64-bit memory BARs", () => {
  test("reset: flags only (memory, 64-bit type 10b, prefetchable as configured), address 0", () => {
    const { cs } = bars();
    assert.equal(cs.read(0x10, 4), 0x4);
    assert.equal(cs.read(0x14, 4), 0);
    assert.equal(cs.read(0x20, 4), 0xc);
    assert.equal(cs.read(0x24, 4), 0);
  });

  test("sizing a BAR below 4 GiB: all-ones to both halves reads back ~(size-1) with the flags", () => {
    const { cs } = bars();
    cs.write(0x10, 4, 0xffffffff);
    cs.write(0x14, 4, 0xffffffff);
    assert.equal(cs.read(0x10, 4), 0xffffc004);
    assert.equal(cs.read(0x14, 4), 0xffffffff);
    const lo = cs.read(0x10, 4)! & ~0xf;
    assert.equal((~lo >>> 0) + 1, 16 * 1024, "decoded size");
  });

  test("sizing a BAR above 4 GiB: the size shows in the high half", () => {
    const { cs } = bars();
    cs.write(0x20, 4, 0xffffffff);
    cs.write(0x24, 4, 0xffffffff);
    assert.equal(cs.read(0x20, 4), 0x0000000c);
    assert.equal(cs.read(0x24, 4), 0xfffffffe);
    const mask = (BigInt(cs.read(0x24, 4)!) << 32n) | BigInt(cs.read(0x20, 4)! & ~0xf);
    assert.equal(BigInt.asUintN(64, ~mask) + 1n, 8n * 2n ** 30n);
  });

  test("programming an address: low bits below the size stay 0, barAddress combines both halves", () => {
    const { cs, set } = bars();
    cs.write(0x10, 4, 0xfebf1234);
    cs.write(0x14, 4, 0x00000001);
    assert.equal(cs.read(0x10, 4), 0xfebf0004);
    assert.equal(set.barAddress(0), 0x1_febf_0000n);
    cs.write(0x20, 4, 0x80000000);
    cs.write(0x24, 4, 0x00000003);
    assert.equal(set.barAddress(4), 0x2_0000_0000n, "8 GiB alignment clears bits 32 and 31");
  });

  test("byte and word writes of the BAR follow the same masks", () => {
    const { cs, set } = bars();
    cs.write(0x11, 1, 0xff);
    cs.write(0x12, 2, 0xabcd);
    assert.equal(cs.read(0x10, 4), 0xabcdc004);
    assert.equal(set.barAddress(0), 0xabcdc000n);
  });

  test("unimplemented BARs read 0 and ignore writes; barAddress is undefined", () => {
    const { cs, set } = bars();
    for (const o of [0x18, 0x1c]) {
      cs.write(o, 4, 0xffffffff);
      assert.equal(cs.read(o, 4), 0);
    }
    assert.equal(set.barAddress(2), undefined);
    assert.equal(set.barAddress(1), undefined, "upper half is not a BAR of its own");
    assert.deepEqual(
      set.list().map((b) => b.index),
      [0, 4],
    );
  });

  test("setSizeBytes grows the size mask and drops address bits now inside the BAR", () => {
    const { cs, set } = bars();
    cs.write(0x10, 4, 0x12345000);
    set.bar(0)!.setSizeBytes(64 * 1024);
    assert.equal(cs.read(0x10, 4), 0x12340004);
    cs.write(0x10, 4, 0xffffffff);
    assert.equal(cs.read(0x10, 4), 0xffff0004);
    assert.equal(set.bar(0)!.sizeBytes, 64 * 1024);
  });

  test("bad specs are refused", () => {
    assert.match(checkBarSpecs([{ index: 1, sizeBytes: 4096, prefetchable: false }]) ?? "", /not 0, 2 or 4/);
    assert.match(checkBarSpecs([{ index: 0, sizeBytes: 2048, prefetchable: false }]) ?? "", /power of two/);
    assert.match(checkBarSpecs([{ index: 0, sizeBytes: 12288, prefetchable: false }]) ?? "", /power of two/);
    assert.match(
      checkBarSpecs([
        { index: 2, sizeBytes: 4096, prefetchable: false },
        { index: 2, sizeBytes: 4096, prefetchable: false },
      ]) ?? "",
      /twice/,
    );
    assert.throws(
      () =>
        new BarSet(new ConfigSpace(), [{ index: 3, sizeBytes: 4096, prefetchable: false }], {
          baseOffset: 0x10,
          namePrefix: "bar",
        }),
      (e: unknown) => e instanceof PciError && e.code === "invalid-descriptor",
    );
  });
});
