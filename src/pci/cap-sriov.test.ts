import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AriCapability } from "./cap-ari.ts";
import {
  PCI_SRIOV_BAR,
  PCI_SRIOV_CTRL,
  PCI_SRIOV_CTRL_ARI,
  PCI_SRIOV_CTRL_MSE,
  PCI_SRIOV_CTRL_VFE,
  PCI_SRIOV_NUM_VF,
  PCI_SRIOV_SYS_PGSIZE,
  SriovCapability,
  type SriovState,
} from "./cap-sriov.ts";
import { buildCapabilityList, walkCapabilities } from "./capabilities.ts";
import { ConfigSpace } from "./config-space.ts";
import type { PciEvent } from "./events.ts";

const S = 0x100; // SR-IOV capability offset

function sriov() {
  const cs = new ConfigSpace();
  const changes: SriovState[] = [];
  const events: PciEvent[] = [];
  const cap = new SriovCapability({
    totalVfs: 8,
    initialVfs: 8,
    vfDeviceId: 0x5846,
    firstVfOffset: 1,
    vfStride: 1,
    vfBars: [{ index: 0, sizeBytes: 16 * 1024, prefetchable: false }],
    onChange: (s) => changes.push(s),
    onEvent: (e) => events.push(e),
  });
  buildCapabilityList(cs, [], [cap, new AriCapability(0)]);
  return { cs, cap, changes, events };
}

describe("SR-IOV capability", () => {
  test("reset values of every register", () => {
    const { cs } = sriov();
    const expected: [number, 1 | 2 | 4, number, string][] = [
      [0x00, 4, (0x140 << 20) | (1 << 16) | 0x0010, "header: id 0x10 v1, next ARI"],
      [0x04, 4, 0, "SR-IOV capabilities"],
      [0x08, 2, 0, "control"],
      [0x0a, 2, 0, "status"],
      [0x0c, 2, 8, "InitialVFs"],
      [0x0e, 2, 8, "TotalVFs"],
      [0x10, 2, 0, "NumVFs"],
      [0x12, 1, 0, "function dependency link"],
      [0x14, 2, 1, "First VF Offset"],
      [0x16, 2, 1, "VF Stride"],
      [0x1a, 2, 0x5846, "VF Device ID"],
      [0x1c, 4, 0x553, "supported page sizes"],
      [0x20, 4, 1, "system page size 4 KiB"],
      [0x24, 4, 0x4, "VF BAR0 64-bit memory"],
      [0x28, 4, 0, "VF BAR1"],
      [0x2c, 4, 0, "VF BAR2"],
      [0x38, 4, 0, "VF BAR5"],
      [0x3c, 4, 0, "VF Migration State Array Offset"],
    ];
    for (const [o, size, value, name] of expected) assert.equal(cs.read(S + o, size), value, name);
  });

  test("ARI capability is present and names the next function", () => {
    const { cs } = sriov();
    const walk = walkCapabilities(cs);
    assert.deepEqual(
      walk.extended.map((c) => c.id),
      [0x10, 0x0e],
    );
    assert.equal(cs.read(0x144, 2), 0x0000, "next function 0: last");
    const other = new ConfigSpace();
    buildCapabilityList(other, [], [new AriCapability(2)]);
    assert.equal(other.read(0x104, 2), 0x0200);
  });

  test("NumVFs is RW and bounded by TotalVFs", () => {
    const { cs, events } = sriov();
    cs.write(S + PCI_SRIOV_NUM_VF, 2, 4);
    assert.equal(cs.read(S + PCI_SRIOV_NUM_VF, 2), 4);
    cs.write(S + PCI_SRIOV_NUM_VF, 2, 9);
    assert.equal(cs.read(S + PCI_SRIOV_NUM_VF, 2), 4, "above TotalVFs discarded");
    assert.deepEqual(events, [{ name: "pci.sriov.num-vfs-out-of-range", requested: 9, totalVfs: 8 }]);
  });

  test("VF Enable and NumVFs writes call onChange with the new state", () => {
    const { cs, changes } = sriov();
    cs.write(S + PCI_SRIOV_NUM_VF, 2, 3);
    cs.write(S + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
    cs.write(S + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE); // no change, no call
    cs.write(S + PCI_SRIOV_CTRL, 2, 0);
    assert.deepEqual(changes, [
      { vfEnable: false, numVfs: 3, vfMemorySpaceEnable: false, ariCapableHierarchy: false },
      { vfEnable: true, numVfs: 3, vfMemorySpaceEnable: true, ariCapableHierarchy: false },
      { vfEnable: false, numVfs: 3, vfMemorySpaceEnable: false, ariCapableHierarchy: false },
    ]);
  });

  test("a dword write of Control+Status at 0x08 and NumVFs in one 4-byte access at 0x10 both work", () => {
    const { cs, cap } = sriov();
    cs.write(S + 0x10, 4, 0xffff0002); // NumVFs = 2, function dependency link RO
    cs.write(S + 0x08, 4, 0xffff0019); // VFE | MSE | ARI; status RO
    assert.deepEqual(cap.state(), {
      vfEnable: true,
      numVfs: 2,
      vfMemorySpaceEnable: true,
      ariCapableHierarchy: true,
    });
    assert.equal(cs.read(S + 0x08, 4), 0x00000019);
  });

  test("while VF Enable is set, NumVFs, ARI Capable Hierarchy and System Page Size writes are ignored", () => {
    const { cs, cap, events } = sriov();
    cs.write(S + PCI_SRIOV_NUM_VF, 2, 2);
    cs.write(S + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
    cs.write(S + PCI_SRIOV_NUM_VF, 2, 5);
    cs.write(S + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_ARI);
    cs.write(S + PCI_SRIOV_SYS_PGSIZE, 4, 0x10);
    assert.deepEqual(cap.state(), {
      vfEnable: true,
      numVfs: 2,
      vfMemorySpaceEnable: false,
      ariCapableHierarchy: false,
    });
    assert.equal(cs.read(S + PCI_SRIOV_SYS_PGSIZE, 4), 1);
    assert.equal(cs.read(S + 0x14, 4), 0x00010001, "offset and stride unchanged");
    assert.deepEqual(
      events.map((e) => (e.name === "pci.sriov.write-ignored-vf-enabled" ? e.field : e.name)),
      ["sriov.numVfs", "sriov.control.ariCapableHierarchy", "sriov.systemPageSize"],
    );
  });

  test("VF BAR0/1 sizing protocol and address", () => {
    const { cs, cap } = sriov();
    cs.write(S + PCI_SRIOV_BAR, 4, 0xffffffff);
    cs.write(S + PCI_SRIOV_BAR + 4, 4, 0xffffffff);
    assert.equal(cs.read(S + PCI_SRIOV_BAR, 4), 0xffffc004);
    assert.equal(cs.read(S + PCI_SRIOV_BAR + 4, 4), 0xffffffff);
    cs.write(S + PCI_SRIOV_BAR, 4, 0xc0000000);
    cs.write(S + PCI_SRIOV_BAR + 4, 4, 0x1);
    assert.equal(cap.vfBars.barAddress(0), 0x1_c000_0000n);
    for (const o of [0x2c, 0x30, 0x34, 0x38]) {
      cs.write(S + o, 4, 0xffffffff);
      assert.equal(cs.read(S + o, 4), 0, "unimplemented VF BAR");
    }
  });

  test("System Page Size: one supported bit is accepted and grows VF BAR sizes; others are discarded", () => {
    const { cs, cap, events } = sriov();
    cs.write(S + PCI_SRIOV_SYS_PGSIZE, 4, 0x10); // 64 KiB
    assert.equal(cs.read(S + PCI_SRIOV_SYS_PGSIZE, 4), 0x10);
    assert.equal(cap.vfBars.bar(0)!.sizeBytes, 64 * 1024);
    cs.write(S + PCI_SRIOV_BAR, 4, 0xffffffff);
    assert.equal(cs.read(S + PCI_SRIOV_BAR, 4), 0xffff0004);
    cs.write(S + PCI_SRIOV_SYS_PGSIZE, 4, 0x3); // two bits
    cs.write(S + PCI_SRIOV_SYS_PGSIZE, 4, 0x4); // 16 KiB: not supported
    assert.equal(cs.read(S + PCI_SRIOV_SYS_PGSIZE, 4), 0x10);
    assert.equal(events.length, 2);
    cs.write(S + PCI_SRIOV_SYS_PGSIZE, 4, 0x1);
    assert.equal(cap.vfBars.bar(0)!.sizeBytes, 16 * 1024, "back to the VF BAR's own size");
  });

  test("read-only registers cannot be written", () => {
    const { cs } = sriov();
    for (const o of [0x04, 0x0c, 0x14, 0x18, 0x1c, 0x3c]) {
      const before = cs.read(S + o, 4);
      cs.write(S + o, 4, 0xffffffff);
      assert.equal(cs.read(S + o, 4), before, `0x${o.toString(16)}`);
    }
    cs.write(S + 0x0a, 2, 0xffff);
    assert.equal(cs.read(S + 0x0a, 2), 0, "status");
  });
});
