import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MsixCapability, type MsixControl } from "./cap-msix.ts";
import { buildCapabilityList } from "./capabilities.ts";
import { ConfigSpace } from "./config-space.ts";

describe("MSI-X capability", () => {
  test("reset values, RO fields, RW Enable / Function Mask reported once per change", () => {
    const cs = new ConfigSpace();
    const changes: MsixControl[] = [];
    const cap = new MsixCapability({
      vectors: 2048,
      tableBar: 4,
      tableOffset: 0x8000,
      pbaBar: 4,
      pbaOffset: 0xc000,
      onControlChange: (c) => changes.push(c),
    });
    buildCapabilityList(cs, [cap], []);
    assert.equal(cs.read(0x40, 4), 0x07ff0011, "id 0x11, next 0, table size 2047");
    assert.equal(cs.read(0x44, 4), 0x8004);
    assert.equal(cs.read(0x48, 4), 0xc004);
    cs.write(0x40, 4, 0xffffffff);
    cs.write(0x44, 4, 0);
    cs.write(0x48, 4, 0);
    assert.equal(cs.read(0x40, 4), 0xc7ff0011);
    assert.equal(cs.read(0x44, 4), 0x8004);
    assert.equal(cs.read(0x48, 4), 0xc004);
    cs.write(0x43, 1, 0xc0); // same bits again: no report
    cs.write(0x43, 1, 0x80);
    assert.deepEqual(changes, [
      { enable: true, functionMask: true },
      { enable: true, functionMask: false },
    ]);
    assert.deepEqual(cap.control, { enable: true, functionMask: false });
  });
});
