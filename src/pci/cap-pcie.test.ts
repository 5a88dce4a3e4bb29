import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVSTA,
  PcieCapability,
} from "./cap-pcie.ts";
import { buildCapabilityList } from "./capabilities.ts";
import { ConfigSpace } from "./config-space.ts";

function pcie(options: { linkSpeed?: number; linkWidth?: number } = {}) {
  const cs = new ConfigSpace();
  let flrs = 0;
  const layout = buildCapabilityList(
    cs,
    [new PcieCapability({ ...options, onInitiateFlr: () => flrs++ })],
    [],
  );
  const at = layout.offsets.get("pcie")!;
  return { cs, at, flrs: () => flrs };
}

describe("PCI Express capability", () => {
  test("reset values: v2 endpoint, FLR capable, plausible link", () => {
    const { cs, at } = pcie();
    assert.equal(cs.read(at, 1), 0x10);
    assert.equal(cs.read(at + 2, 2), 0x0002, "version 2, type 0 (endpoint)");
    const devcap = cs.read(at + PCI_EXP_DEVCAP, 4)!;
    assert.notEqual(devcap & PCI_EXP_DEVCAP_FLR, 0, "bit 28 FLR");
    assert.notEqual(devcap & 0x8000, 0, "role-based error reporting");
    assert.equal(devcap & 0x7, 1, "MPS supported 256 B");
    assert.equal(cs.read(at + PCI_EXP_DEVCTL, 2), 0x2810);
    assert.equal(cs.read(at + PCI_EXP_DEVSTA, 2), 0);
    assert.equal(cs.read(at + 0x0c, 4)! & 0x3ff, 0x44, "LNKCAP x4 16 GT/s");
    assert.equal(cs.read(at + 0x12, 2)! & 0x3ff, 0x44, "LNKSTA x4 16 GT/s");
    assert.equal(cs.read(at + 0x24, 4), 0x1f, "DEVCAP2");
    assert.equal(cs.read(at + 0x28, 2), 0, "DEVCTL2");
    assert.equal(cs.read(at + 0x2c, 4), 0x1e, "LNKCAP2 2.5–16 GT/s");
    assert.equal(cs.read(at + 0x30, 2), 0x4, "LNKCTL2 target speed");
    for (const o of [0x14, 0x18, 0x1c, 0x20, 0x34, 0x38])
      assert.equal(cs.read(at + o, 4), 0, `slot/root 0x${o.toString(16)}`);
  });

  test("link options change the reported link", () => {
    const { cs, at } = pcie({ linkSpeed: 3, linkWidth: 8 });
    assert.equal(cs.read(at + 0x12, 2)! & 0x3ff, 0x83);
    assert.equal(cs.read(at + 0x2c, 4), 0x0e);
  });

  test("Initiate FLR calls the hook once after the access and always reads 0", () => {
    const { cs, at, flrs } = pcie();
    cs.write(at + PCI_EXP_DEVCTL, 2, 0x2810 | PCI_EXP_DEVCTL_BCR_FLR);
    assert.equal(flrs(), 1);
    assert.equal(cs.read(at + PCI_EXP_DEVCTL, 2)! & PCI_EXP_DEVCTL_BCR_FLR, 0);
    cs.write(at + PCI_EXP_DEVCTL + 1, 1, 0x80); // byte write of the high byte
    assert.equal(flrs(), 2);
    cs.write(at + PCI_EXP_DEVCTL, 1, 0xff); // low byte only: no FLR
    cs.write(at + PCI_EXP_DEVCTL, 2, 0x2810);
    assert.equal(flrs(), 2);
    cs.write(at + PCI_EXP_DEVCTL, 4, 0x000f8000); // dword write covering DEVCTL and DEVSTA
    assert.equal(flrs(), 3);
  });

  test("Device Control RW bits; Device Status errors are RW1C", () => {
    const { cs, at } = pcie();
    cs.write(at + PCI_EXP_DEVCTL, 2, 0x7fff);
    assert.equal(cs.read(at + PCI_EXP_DEVCTL, 2), 0x79ff, "phantom / aux-power bits read 0");
    cs.bytes[at + PCI_EXP_DEVSTA] = 0x0f; // device reports errors
    cs.write(at + PCI_EXP_DEVSTA, 2, 0x0005);
    assert.equal(cs.read(at + PCI_EXP_DEVSTA, 2), 0x000a);
  });

  test("capability and status registers are read-only", () => {
    const { cs, at } = pcie();
    for (const [o, size] of [
      [0x00, 2],
      [0x02, 2],
      [0x04, 4],
      [0x0c, 4],
      [0x12, 2],
      [0x24, 4],
      [0x2a, 2],
      [0x2c, 4],
      [0x32, 2],
    ] as const) {
      const before = cs.read(at + o, size);
      cs.write(at + o, size, -1);
      assert.equal(cs.read(at + o, size), before, `0x${o.toString(16)}`);
    }
  });

  test("FLR-style reset keeps Max_Payload_Size and link control, resets the rest", () => {
    const { cs, at } = pcie();
    cs.write(at + PCI_EXP_DEVCTL, 2, 0x0020 | 0x000f); // MPS 256 + error enables
    cs.write(at + 0x10, 2, 0x0040); // common clock
    cs.write(at + 0x28, 2, 0x0005);
    cs.reset({ keepSticky: true });
    assert.equal(cs.read(at + PCI_EXP_DEVCTL, 2), 0x2810 | 0x0020);
    assert.equal(cs.read(at + 0x10, 2), 0x0040);
    assert.equal(cs.read(at + 0x28, 2), 0);
  });
});
