import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  buildCapabilityList,
  type Capability,
  type ExtendedCapability,
  walkCapabilities,
} from "./capabilities.ts";
import { ConfigSpace } from "./config-space.ts";
import { PciError } from "./errors.ts";

function cap(name: string, id: number, sizeBytes: number): Capability {
  return {
    name,
    id,
    sizeBytes,
    define: (cs, offset) =>
      void cs.defineField({ name: `${name}.body`, offset: offset + 2, width: 2, reset: id }),
  };
}
function ext(name: string, id: number, sizeBytes: number): ExtendedCapability {
  return { name, id, version: 1, sizeBytes, define: () => {} };
}
function withStatusCapList(cs: ConfigSpace, pointer: number): void {
  cs.defineField({ name: "status", offset: 0x06, width: 2, reset: 0x10 });
  cs.defineField({ name: "capPtr", offset: 0x34, width: 1, reset: pointer });
}

describe("capability list", () => {
  test("standard capabilities are packed from 0x40 with next pointers ending in 0", () => {
    const cs = new ConfigSpace();
    const layout = buildCapabilityList(cs, [cap("a", 0x01, 8), cap("b", 0x11, 12), cap("c", 0x10, 0x3c)], []);
    assert.equal(layout.capabilitiesPointer, 0x40);
    assert.deepEqual(
      [...layout.offsets],
      [
        ["a", 0x40],
        ["b", 0x48],
        ["c", 0x54],
      ],
    );
    assert.equal(cs.read(0x40, 2), 0x4801);
    assert.equal(cs.read(0x48, 2), 0x5411);
    assert.equal(cs.read(0x54, 2), 0x0010);
    withStatusCapList(cs, layout.capabilitiesPointer);
    const walk = walkCapabilities(cs);
    assert.deepEqual(walk.standard, [
      { id: 0x01, offset: 0x40 },
      { id: 0x11, offset: 0x48 },
      { id: 0x10, offset: 0x54 },
    ]);
    assert.equal(walk.problem, undefined);
  });

  test("extended capabilities start at 0x100 with id / version / next", () => {
    const cs = new ConfigSpace();
    buildCapabilityList(cs, [], [ext("sriov", 0x10, 0x40), ext("ari", 0x0e, 8)]);
    assert.equal(cs.read(0x100, 4), (0x140 << 20) | (1 << 16) | 0x10);
    assert.equal(cs.read(0x140, 4), (1 << 16) | 0x0e);
    assert.deepEqual(walkCapabilities(cs).extended, [
      { id: 0x10, version: 1, offset: 0x100 },
      { id: 0x0e, version: 1, offset: 0x140 },
    ]);
  });

  test("no capabilities: pointer 0, 0x100 reads 0, walk finds nothing", () => {
    const cs = new ConfigSpace();
    const layout = buildCapabilityList(cs, [], []);
    assert.equal(layout.capabilitiesPointer, 0);
    assert.equal(cs.read(0x100, 4), 0);
    assert.deepEqual(walkCapabilities(cs), { standard: [], extended: [] });
  });

  test("capabilities that do not fit are a layout error", () => {
    assert.throws(
      () => buildCapabilityList(new ConfigSpace(), [cap("big", 1, 0xc4)], []),
      (e: unknown) => e instanceof PciError && e.code === "layout",
    );
    assert.throws(() => buildCapabilityList(new ConfigSpace(), [cap("odd", 1, 6)], []), PciError);
    assert.throws(() => buildCapabilityList(new ConfigSpace(), [], [ext("huge", 1, 0xf04)]), PciError);
  });

  test("the walker stops on loops and out-of-area pointers", () => {
    const loop = new ConfigSpace();
    withStatusCapList(loop, 0x40);
    loop.defineField({ name: "c1", offset: 0x40, width: 2, reset: 0x5001 });
    loop.defineField({ name: "c2", offset: 0x50, width: 2, reset: 0x4005 });
    const w = walkCapabilities(loop);
    assert.equal(w.standard.length, 2);
    assert.match(w.problem ?? "", /0x40/);

    const out = new ConfigSpace();
    withStatusCapList(out, 0x20);
    assert.match(walkCapabilities(out).problem ?? "", /0x20/);

    const extLoop = new ConfigSpace();
    extLoop.defineField({ name: "e", offset: 0x100, width: 4, reset: (0x100 << 20) | 0x10 });
    assert.match(walkCapabilities(extLoop).problem ?? "", /extended/);
  });
});
