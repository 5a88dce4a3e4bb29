import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PciError } from "./errors.ts";
import type { PciEvent } from "./events.ts";
import { MsixTable } from "./msix.ts";

interface Message {
  vector: number;
  address: bigint;
  data: number;
}

function table(vectors = 4) {
  const sent: Message[] = [];
  const events: PciEvent[] = [];
  const t = new MsixTable({
    vectors,
    deliver: (vector, address, data) => sent.push({ vector, address, data }),
    onEvent: (e) => events.push(e),
  });
  return { t, sent, events };
}

function u32(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return b;
}
function readU32(t: MsixTable, offset: number): number {
  return new DataView(t.readTable(offset, 4)!.buffer).getUint32(0, true);
}
/** Programs vector v like a driver: address, data, then unmask. */
function program(t: MsixTable, v: number, address: bigint, data: number, unmask = true): void {
  t.writeTable(v * 16, u32(Number(address & 0xffffffffn)));
  t.writeTable(v * 16 + 4, u32(Number(address >> 32n)));
  t.writeTable(v * 16 + 8, u32(data));
  if (unmask) t.writeTable(v * 16 + 12, u32(0));
}

describe("MSI-X table", () => {
  test("sizes and reset state: all entries masked, address/data 0, nothing pending", () => {
    const { t } = table(65);
    assert.equal(t.tableSizeBytes, 65 * 16);
    assert.equal(t.pbaSizeBytes, 16);
    for (let v = 0; v < 65; v++) {
      assert.equal(readU32(t, v * 16), 0);
      assert.equal(readU32(t, v * 16 + 12), 1);
      assert.equal(t.masked(v), true);
      assert.equal(t.pending(v), false);
    }
    assert.deepEqual([...t.readPba(0, 16)!], new Array(16).fill(0));
    assert.throws(() => new MsixTable({ vectors: 0, deliver: () => {} }), PciError);
    assert.throws(() => new MsixTable({ vectors: 2049, deliver: () => {} }), PciError);
  });

  test("entries are writable at dword and qword granularity; RO bits stay 0", () => {
    const { t } = table();
    t.writeTable(16, u32(0xfee01003));
    assert.equal(readU32(t, 16), 0xfee01000, "address bits 1:0 RO");
    const q = new Uint8Array(8);
    new DataView(q.buffer).setBigUint64(0, 0xffffffff_00004021n, true); // data + vector control
    t.writeTable(16 + 8, q);
    assert.equal(readU32(t, 16 + 8), 0x4021);
    assert.equal(readU32(t, 16 + 12), 0x1, "vector control bits 31:1 RO");
    assert.deepEqual(t.entry(1), { address: 0xfee01000n, data: 0x4021, masked: true });
  });

  test("signal: disabled → pending; enabled and unmasked → delivered with address and data", () => {
    const { t, sent } = table();
    program(t, 2, 0x1_fee0_0000n, 0x55);
    assert.equal(t.signal(2), "pending", "MSI-X disabled");
    assert.equal(sent.length, 0);
    t.setControl({ enable: true, functionMask: false });
    assert.deepEqual(sent, [{ vector: 2, address: 0x1_fee0_0000n, data: 0x55 }], "enable flushes pending");
    assert.equal(t.pending(2), false);
    assert.equal(t.signal(2), "delivered");
    assert.equal(sent.length, 2);
  });

  test("masked vector → pending bit in PBA → unmask delivers and clears it", () => {
    const { t, sent } = table();
    t.setControl({ enable: true, functionMask: false });
    program(t, 1, 0xfee00000n, 0x21, false);
    assert.equal(t.signal(1), "pending");
    assert.equal(t.signal(1), "pending", "a second signal is coalesced");
    assert.equal(t.pending(1), true);
    assert.equal(t.readPba(0, 1)![0], 0b10);
    assert.equal(sent.length, 0);
    t.writeTable(16 + 12, u32(0)); // unmask
    assert.deepEqual(sent, [{ vector: 1, address: 0xfee00000n, data: 0x21 }]);
    assert.equal(t.pending(1), false);
    assert.equal(t.readPba(0, 1)![0], 0);
  });

  test("Function Mask holds every vector pending; clearing it delivers them", () => {
    const { t, sent } = table();
    for (let v = 0; v < 4; v++) program(t, v, 0xfee00000n, v);
    t.setControl({ enable: true, functionMask: true });
    assert.equal(t.signal(0), "pending");
    assert.equal(t.signal(3), "pending");
    assert.equal(t.masked(0), false, "masked() is the vector's own bit");
    assert.equal(t.deliverable(0), false);
    t.setControl({ enable: true, functionMask: false });
    assert.deepEqual(
      sent.map((m) => m.vector),
      [0, 3],
    );
  });

  test("the PBA is read-only", () => {
    const { t } = table();
    t.signal(0);
    assert.equal(t.writePba(0, new Uint8Array(8)), true);
    assert.equal(t.pending(0), true);
    t.writePba(0, new Uint8Array(8).fill(0xff));
    assert.equal(t.pending(1), false);
  });

  test("programmatic mask / unmask (vfio-user SET_IRQS)", () => {
    const { t, sent } = table();
    t.setControl({ enable: true, functionMask: false });
    t.signal(3);
    assert.equal(t.setVectorMasked(3, false), true);
    assert.equal(sent.length, 1);
    assert.equal(t.setVectorMasked(3, true), true);
    assert.equal(t.masked(3), true);
    assert.equal(t.setVectorMasked(9, false), false);
  });

  test("bad vectors and malformed accesses are reported, never thrown", () => {
    const { t, events } = table();
    assert.equal(t.signal(4), "bad-vector");
    assert.equal(t.signal(-1), "bad-vector");
    assert.equal(t.pending(4), false);
    assert.equal(t.masked(4), true);
    assert.equal(t.entry(4), undefined);
    assert.equal(t.readTable(60, 8), undefined);
    assert.equal(t.writeTable(64, u32(0)), false);
    assert.equal(t.readPba(8, 1), undefined);
    assert.equal(t.writePba(-1, u32(0)), false);
    assert.equal(events.length, 6);
  });

  test("snapshot → JSON → restore round trip into a fresh table; restoring sends nothing", () => {
    const a = table();
    a.t.setControl({ enable: true, functionMask: false });
    program(a.t, 0, 0xfee0_0000n, 7);
    program(a.t, 3, 0x2_0000_1000n, 9, false);
    a.t.signal(3);
    const json = JSON.parse(JSON.stringify(a.t.snapshot()));
    assert.equal(json.entries[3].vector, 3);
    assert.equal(json.entries[3].pending, true);

    const b = table();
    const result = b.t.restore(json);
    assert.deepEqual(result, { ok: true, ignoredFields: [] });
    assert.deepEqual(b.t.snapshot(), a.t.snapshot());
    assert.equal(b.sent.length, 0);
    b.t.setControl({ enable: true, functionMask: false });
    b.t.writeTable(3 * 16 + 12, u32(0));
    assert.deepEqual(b.sent, [{ vector: 3, address: 0x2_0000_1000n, data: 9 }]);
  });

  test("restore refuses foreign or corrupt state and changes nothing", () => {
    const { t } = table();
    const good = t.snapshot();
    const before = JSON.stringify(good);
    const bad: [unknown, string][] = [
      [null, "state-format"],
      [{ ...good, format: "x" }, "state-format"],
      [{ ...good, version: 9 }, "state-version"],
      [{ ...good, version: 2 }, "state-bad-value"], // a version 1 body under the compact version
      [{ ...good, vectors: 5 }, "state-vector-count"],
      [{ ...good, entries: good.entries.slice(1) }, "state-vector-count"],
      [{ ...good, entries: good.entries.map((e) => ({ ...e, vector: 0 })) }, "state-bad-value"],
      [
        { ...good, entries: good.entries.map((e, i) => (i === 2 ? { ...e, messageAddressLo: 3 } : e)) },
        "state-bad-value",
      ],
      [
        { ...good, entries: good.entries.map((e, i) => (i === 2 ? { ...e, vectorControl: 2 } : e)) },
        "state-bad-value",
      ],
      [
        { ...good, entries: good.entries.map((e, i) => (i === 2 ? { ...e, pending: 1 } : e)) },
        "state-bad-value",
      ],
    ];
    for (const [s, code] of bad) {
      const r = t.restore(s);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.error.code, code);
    }
    assert.equal(JSON.stringify(t.snapshot()), before);
  });

  test("compact snapshot lists only programmed or pending entries and round-trips through JSON", () => {
    const a = table(8);
    a.t.setControl({ enable: true, functionMask: false });
    program(a.t, 1, 0xfee0_0000n, 7);
    program(a.t, 5, 0x2_0000_1000n, 9, false);
    a.t.signal(5); // masked → pending
    const json = JSON.parse(JSON.stringify(a.t.compactSnapshot()));
    assert.deepEqual(json, {
      format: "nvmig.pci.msix-table",
      version: 2,
      vectors: 8,
      entries: {
        vector: [1, 5],
        messageAddressLo: [0xfee0_0000, 0x1000],
        messageAddressHi: [0, 2],
        messageData: [7, 9],
        vectorControl: [0, 1],
        pending: [0, 1],
      },
    });
    // Into a table whose other entries are programmed: those return to their reset state.
    const b = table(8);
    b.t.setControl({ enable: true, functionMask: false });
    program(b.t, 0, 0xfee0_1000n, 3);
    program(b.t, 1, 0xfee0_1000n, 4);
    b.t.signal(0);
    assert.equal(b.sent.length, 1);
    assert.deepEqual(b.t.restore(json), { ok: true, ignoredFields: [] });
    assert.deepEqual(b.t.snapshot(), a.t.snapshot());
    assert.deepEqual(
      b.t.control,
      { enable: true, functionMask: false },
      "Message Control is not in the table",
    );
    assert.equal(b.sent.length, 1, "restoring sends nothing");
    b.t.writeTable(5 * 16 + 12, u32(0));
    assert.deepEqual(b.sent[1], { vector: 5, address: 0x2_0000_1000n, data: 9 });
    // A table in its reset state lists nothing.
    assert.deepEqual(table(8).t.compactSnapshot().entries.vector, []);
  });

  test("compact restore refuses corrupt columns and changes nothing", () => {
    const { t } = table(8);
    program(t, 2, 0xfee0_0000n, 1);
    program(t, 6, 0xfee0_0000n, 2);
    const good = t.compactSnapshot();
    const before = JSON.stringify(t.snapshot());
    const col = (patch: Partial<typeof good.entries>) => ({
      ...good,
      entries: { ...good.entries, ...patch },
    });
    const bad: [unknown, string][] = [
      [{ ...good, vectors: 4 }, "state-vector-count"],
      [{ ...good, entries: null }, "state-vector-count"],
      [col({ messageData: [1] }), "state-bad-value"],
      [col({ pending: undefined as unknown as number[] }), "state-bad-value"],
      [col({ vector: [6, 2] }), "state-bad-value"],
      [col({ vector: [2, 2] }), "state-bad-value"],
      [col({ vector: [2, 8] }), "state-bad-value"],
      [col({ messageAddressLo: [0xfee0_0000, 0xfee0_0002] }), "state-bad-value"],
      [col({ vectorControl: [0, 3] }), "state-bad-value"],
      [col({ pending: [0, 2] }), "state-bad-value"],
      [col({ messageAddressHi: [0, -1] }), "state-bad-value"],
    ];
    for (const [s, code] of bad) {
      const r = t.restore(s);
      assert.equal(r.ok, false, code);
      if (!r.ok) assert.equal(r.error.code, code);
    }
    assert.equal(JSON.stringify(t.snapshot()), before);
  });
});
