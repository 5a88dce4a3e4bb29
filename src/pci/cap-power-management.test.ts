import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PowerManagementCapability } from "./cap-power-management.ts";
import { buildCapabilityList } from "./capabilities.ts";
import { ConfigSpace } from "./config-space.ts";
import type { PciEvent } from "./events.ts";

describe("Power Management capability", () => {
  test("reset: PMC v3 without D1/D2/PME; PMCSR D0 with No_Soft_Reset", () => {
    const cs = new ConfigSpace();
    buildCapabilityList(cs, [new PowerManagementCapability(() => {})], []);
    assert.equal(cs.read(0x40, 4), 0x00030001);
    assert.equal(cs.read(0x44, 4), 0x00000008);
  });

  test("D0 ↔ D3hot are writable; D1/D2 writes are discarded and reported; other bits RO", () => {
    const events: PciEvent[] = [];
    const cs = new ConfigSpace();
    const pm = new PowerManagementCapability((e) => events.push(e));
    buildCapabilityList(cs, [pm], []);
    cs.write(0x44, 2, 0x0003);
    assert.equal(pm.powerState, 3);
    assert.equal(cs.read(0x44, 2), 0x000b);
    cs.write(0x44, 2, 0x0001);
    assert.equal(pm.powerState, 3, "D1 discarded");
    cs.write(0x44, 2, 0xfffe);
    assert.equal(cs.read(0x44, 2), 0x000b, "D2 discarded, PME_En / PME_Status / No_Soft_Reset RO");
    cs.write(0x44, 2, 0x0000);
    assert.equal(pm.powerState, 0);
    assert.deepEqual(events, [
      { name: "pci.pm.unsupported-power-state", requested: 1 },
      { name: "pci.pm.unsupported-power-state", requested: 2 },
    ]);
  });
});
