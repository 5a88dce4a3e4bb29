import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigSpace } from "./config-space.ts";
import {
  defineType0Header,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_STATUS_CAP_LIST,
} from "./type0-header.ts";

function header(commandWrites: [number, number][] = []) {
  const cs = new ConfigSpace();
  defineType0Header(cs, {
    vendorId: 0x1234,
    deviceId: 0x5845,
    revisionId: 0x02,
    classCode: 0x010802,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
    capabilitiesPointer: 0x40,
    interruptPin: 1,
    onCommandWrite: (now, before) => commandWrites.push([now, before]),
  });
  return cs;
}

describe("Type 0 header", () => {
  test("reset value of every register", () => {
    const cs = header();
    const expected: [number, 1 | 2 | 4, number, string][] = [
      [0x00, 2, 0x1234, "vendor id"],
      [0x02, 2, 0x5845, "device id"],
      [0x04, 2, 0x0000, "command"],
      [0x06, 2, PCI_STATUS_CAP_LIST, "status"],
      [0x08, 1, 0x02, "revision"],
      [0x09, 1, 0x02, "programming interface"],
      [0x0a, 1, 0x08, "sub-class"],
      [0x0b, 1, 0x01, "base class"],
      [0x0c, 1, 0, "cache line size"],
      [0x0d, 1, 0, "latency timer"],
      [0x0e, 1, 0, "header type 0, single function"],
      [0x0f, 1, 0, "BIST"],
      [0x28, 4, 0, "CardBus CIS"],
      [0x2c, 2, 0x1af4, "subsystem vendor id"],
      [0x2e, 2, 0x1100, "subsystem id"],
      [0x30, 4, 0, "expansion ROM"],
      [0x34, 1, 0x40, "capabilities pointer"],
      [0x3c, 1, 0, "interrupt line"],
      [0x3d, 1, 1, "interrupt pin"],
      [0x3e, 1, 0, "min_gnt"],
      [0x3f, 1, 0, "max_lat"],
    ];
    for (const [offset, size, value, name] of expected) assert.equal(cs.read(offset, size), value, name);
  });

  test("Command: I/O, memory, bus master, INTx disable are RW; legacy bits read 0", () => {
    const cs = header();
    cs.write(0x04, 2, 0xffff);
    const c = cs.read(0x04, 2)!;
    for (const bit of [PCI_COMMAND_IO, PCI_COMMAND_MEMORY, PCI_COMMAND_MASTER, PCI_COMMAND_INTX_DISABLE]) {
      assert.notEqual(c & bit, 0);
    }
    assert.equal(c & (0x0008 | 0x0010 | 0x0020 | 0x0080 | 0x0200 | 0xf800), 0);
    cs.write(0x04, 2, 0);
    assert.equal(cs.read(0x04, 2), 0);
  });

  test("Command writes are reported once, with new and previous value, and only on change", () => {
    const writes: [number, number][] = [];
    const cs = header(writes);
    cs.write(0x04, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cs.write(0x04, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    cs.write(0x04, 1, PCI_COMMAND_MEMORY);
    assert.deepEqual(writes, [
      [0x6, 0x0],
      [0x2, 0x6],
    ]);
  });

  test("Status: error bits are RW1C, Capabilities List is RO", () => {
    const cs = header();
    cs.bytes[0x07] = 0xf9; // device sets all error bits
    cs.write(0x06, 2, 0x0000);
    assert.equal(cs.read(0x06, 2), 0xf910);
    cs.write(0x06, 2, 0x2000);
    assert.equal(cs.read(0x06, 2), 0xd910, "only the written bit cleared");
    cs.write(0x06, 2, 0xffff);
    assert.equal(cs.read(0x06, 2), PCI_STATUS_CAP_LIST, "cap list bit survives all-ones");
  });

  test("identity, class code, pin and ROM are read-only; interrupt line is RW", () => {
    const cs = header();
    for (const [o, s] of [
      [0x00, 4],
      [0x08, 4],
      [0x2c, 4],
      [0x30, 4],
      [0x34, 1],
      [0x3d, 1],
    ] as const) {
      const before = cs.read(o, s);
      cs.write(o, s, -1);
      assert.equal(cs.read(o, s), before);
    }
    cs.write(0x3c, 1, 0x0b);
    assert.equal(cs.read(0x3c, 1), 0x0b);
  });

  test("without capabilities the Capabilities List bit is clear", () => {
    const cs = new ConfigSpace();
    defineType0Header(cs, {
      vendorId: 1,
      deviceId: 2,
      revisionId: 0,
      classCode: 0,
      subsystemVendorId: 0,
      subsystemId: 0,
      capabilitiesPointer: 0,
      interruptPin: 0,
      commandWriteMask: PCI_COMMAND_MASTER,
      interruptLineWritable: false,
    });
    assert.equal(cs.read(0x06, 2), 0);
    cs.write(0x04, 2, 0xffff);
    assert.equal(cs.read(0x04, 2), PCI_COMMAND_MASTER);
    cs.write(0x3c, 1, 0xff);
    assert.equal(cs.read(0x3c, 1), 0);
  });
});
