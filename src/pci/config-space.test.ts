import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CONFIG_SPACE_BYTES, ConfigSpace, type FieldWriteContext } from "./config-space.ts";
import { PciError } from "./errors.ts";
import type { PciEvent } from "./events.ts";

function space(): { cs: ConfigSpace; events: PciEvent[] } {
  const events: PciEvent[] = [];
  const cs = new ConfigSpace({ onEvent: (e) => events.push(e) });
  cs.defineField({ name: "ro", offset: 0x00, width: 4, reset: 0x12345678 });
  cs.defineField({ name: "rw", offset: 0x04, width: 2, reset: 0x00f0, writeMask: 0x0ff0 });
  cs.defineField({ name: "w1c", offset: 0x06, width: 2, reset: 0xff01, w1cMask: 0xff00 });
  return { cs, events };
}

describe("ConfigSpace", () => {
  test("is 4096 bytes with byte masks", () => {
    const { cs } = space();
    assert.equal(CONFIG_SPACE_BYTES, 4096);
    assert.equal(cs.bytes.length, 4096);
    assert.equal(cs.writeMask[0x04], 0xf0);
    assert.equal(cs.writeMask[0x05], 0x0f);
    assert.equal(cs.w1cMask[0x07], 0xff);
  });

  test("reads little-endian at sizes 1, 2, 4 and at unaligned offsets", () => {
    const { cs } = space();
    assert.equal(cs.read(0, 4), 0x12345678);
    assert.equal(cs.read(0, 2), 0x5678);
    assert.equal(cs.read(2, 2), 0x1234);
    assert.equal(cs.read(3, 1), 0x12);
    assert.equal(cs.read(1, 4), 0xf0123456);
    assert.equal(cs.read(0x100, 4), 0, "reserved bytes read 0");
  });

  test("read-only bits cannot be written", () => {
    const { cs } = space();
    assert.equal(cs.write(0, 4, 0), true);
    assert.equal(cs.read(0, 4), 0x12345678);
    assert.equal(cs.write(0x200, 4, -1), true);
    assert.equal(cs.read(0x200, 4), 0, "reserved bytes ignore writes");
  });

  test("RW bits can be written, RO bits in the same register are kept", () => {
    const { cs } = space();
    cs.write(0x04, 2, 0xffff);
    assert.equal(cs.read(0x04, 2), 0x0ff0);
    cs.write(0x04, 2, 0x0000);
    assert.equal(cs.read(0x04, 2), 0x0000);
    cs.write(0x05, 1, 0xab); // upper byte only
    assert.equal(cs.read(0x04, 2), 0x0b00);
  });

  test("RW1C clears only the bits written as 1", () => {
    const { cs } = space();
    cs.write(0x06, 2, 0x0300);
    assert.equal(cs.read(0x06, 2), 0xfc01);
    cs.write(0x06, 2, 0x0000);
    assert.equal(cs.read(0x06, 2), 0xfc01, "writing 0 changes nothing");
    cs.write(0x06, 2, 0x00ff);
    assert.equal(cs.read(0x06, 2), 0xfc01, "RO low byte not cleared");
  });

  test("an unaligned 4-byte write spanning two registers applies each byte's masks", () => {
    const { cs } = space();
    cs.write(0x05, 4, 0x00ff0fff); // bytes 5..8: 0xff, 0x0f, 0xff, 0x00
    assert.equal(cs.read(0x04, 2), 0x0ff0);
    assert.equal(cs.read(0x06, 2), 0x0001, "0x07 written 0xff cleared all W1C bits");
  });

  test("malformed accesses return a failure value, report an event and never throw", () => {
    const { cs, events } = space();
    assert.equal(cs.read(4096, 1), undefined);
    assert.equal(cs.read(4094, 4), undefined);
    assert.equal(cs.read(-1, 1), undefined);
    assert.equal(cs.read(0, 3), undefined);
    assert.equal(cs.read(0.5, 1), undefined);
    assert.equal(cs.write(4093, 4, 0), false);
    assert.equal(cs.write(0x04, 2, Number.NaN), false);
    assert.equal(cs.write(0x04, 2, 2 ** 33), false);
    assert.equal(cs.readBytes(0, 0), undefined);
    assert.equal(cs.writeBytes(4095, new Uint8Array(2)), false);
    assert.equal(cs.read(0x04, 2), 0x00f0, "nothing changed");
    assert.equal(events.length, 10);
    assert.deepEqual(events[0], { name: "pci.config.bad-access", offset: 4096, sizeBytes: 1, write: false });
  });

  test("negative values are taken as their two's-complement bits", () => {
    const { cs } = space();
    assert.equal(cs.write(0x04, 2, -1), true);
    assert.equal(cs.read(0x04, 2), 0x0ff0);
  });

  test("readBytes / writeBytes work for any length, e.g. a full 4096-byte read", () => {
    const { cs } = space();
    const all = cs.readBytes(0, 4096);
    assert.equal(all?.length, 4096);
    assert.equal(all?.[3], 0x12);
    assert.equal(cs.writeBytes(0x04, new Uint8Array([0xff, 0xff, 0x00, 0x01])), true);
    assert.equal(cs.read(0x04, 4), 0xfe010ff0);
  });

  test("hooks see previous/next/written/covered and deferred actions run after the whole access", () => {
    const cs = new ConfigSpace();
    const seen: FieldWriteContext[] = [];
    const order: string[] = [];
    cs.defineField({
      name: "hooked",
      offset: 0x10,
      width: 2,
      writeMask: 0x00ff,
      onWrite: (ctx) => {
        seen.push(ctx);
        ctx.defer(() => order.push(`deferred sees other=${cs.read(0x12, 2)}`));
        return ctx.next | 0x8000;
      },
    });
    cs.defineField({ name: "other", offset: 0x12, width: 2, writeMask: 0xffff });
    cs.write(0x11, 2, 0x3456); // byte 0x11 (hooked high byte) = 0x56, byte 0x12 (other low) = 0x34
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.previous, 0);
    assert.equal(seen[0]!.next, 0);
    assert.equal(seen[0]!.written, 0x5600);
    assert.equal(seen[0]!.covered, 0xff00);
    assert.equal(cs.read(0x10, 2), 0x8000, "hook result stored");
    assert.deepEqual(order, ["deferred sees other=52"]);
  });

  test("layout mistakes throw PciError('layout')", () => {
    const cs = new ConfigSpace();
    cs.defineField({ name: "a", offset: 0x10, width: 4 });
    assert.throws(
      () => cs.defineField({ name: "b", offset: 0x12, width: 2 }),
      (e: unknown) => e instanceof PciError && e.code === "layout",
    );
    assert.throws(() => cs.defineField({ name: "c", offset: 0x21, width: 2 }), PciError);
    assert.throws(() => cs.defineField({ name: "a", offset: 0x30, width: 1 }), PciError);
    assert.throws(() => cs.defineField({ name: "d", offset: 4094, width: 4 }), PciError);
  });

  test("reset restores reset values and masks, keeping sticky bits when asked", () => {
    const cs = new ConfigSpace();
    const f = cs.defineField({
      name: "s",
      offset: 0x20,
      width: 2,
      reset: 0x0001,
      writeMask: 0xffff,
      stickyMask: 0xff00,
    });
    cs.write(0x20, 2, 0xabcd);
    f.setWriteMask(0);
    cs.reset({ keepSticky: true });
    assert.equal(cs.read(0x20, 2), 0xab01);
    assert.equal(f.writeMask, 0xffff);
    cs.reset();
    assert.equal(cs.read(0x20, 2), 0x0001);
  });

  test("field lookup by name and accepts()", () => {
    const cs = new ConfigSpace();
    const f = cs.defineField({ name: "n", offset: 0x40, width: 1, writeMask: 0xff, accepts: (v) => v < 10 });
    assert.equal(cs.field("n"), f);
    assert.equal(cs.field("missing"), undefined);
    assert.equal(f.accepts(9), true);
    assert.equal(f.accepts(10), false);
    assert.equal(f.accepts(256), false);
    assert.equal(f.accepts("1"), false);
  });
});
