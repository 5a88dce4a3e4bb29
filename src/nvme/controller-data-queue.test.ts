import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { checkDwordFields } from "./codec-test-helpers.ts";
import {
  type ControllerDataQueueCommand,
  ControllerDataQueueSel,
  decodeControllerDataQueue,
  decodeControllerDataQueueDw0,
  decodeUserDataMigrationQueueEntry,
  Esa,
  encodeControllerDataQueue,
  encodeControllerDataQueueDw0,
  encodeUserDataMigrationQueueEntry,
  Lbacir,
  UDMQ_ENTRY_BYTES,
  type UserDataMigrationQueueEntry,
  udmqEntryPhase,
} from "./controller-data-queue.ts";

function decoded(c: Parameters<typeof decodeControllerDataQueue>[0]): ControllerDataQueueCommand {
  const r = decodeControllerDataQueue(c);
  assert.ok(r.ok);
  return r.value;
}

test("Create CDQ: SEL 0, QT = MOS[7:0] (CDW10 23:16), PC CDW11 0, CQS 31:16, CDQSIZE CDW12", () => {
  checkDwordFields<ControllerDataQueueCommand>({
    base: { sel: ControllerDataQueueSel.Create, qt: 0, pc: false, cqs: 0, cdqsize: 0 },
    encode: encodeControllerDataQueue,
    decode: decoded,
    fields: [
      ["qt", "cdw10", 16, 8],
      ["pc", "cdw11", 0, 1, "bool"],
      ["cqs", "cdw11", 16, 16],
      ["cdqsize", "cdw12", 0, 32],
    ],
    except: ["sel"],
  });
});

test("Delete CDQ: SEL 1, CDQID CDW11 15:0; CQE DW0 15:0 = CDQID; bad SEL is an error value", () => {
  checkDwordFields<ControllerDataQueueCommand>({
    base: { sel: ControllerDataQueueSel.Delete, cdqid: 0 },
    encode: encodeControllerDataQueue,
    decode: decoded,
    fields: [["cdqid", "cdw11", 0, 16]],
    except: ["sel"],
  });
  assert.equal(encodeControllerDataQueue({ sel: 1, cdqid: 5 }).cdw10, 1);
  assert.equal(encodeControllerDataQueueDw0(0x12345), 0x2345);
  assert.equal(decodeControllerDataQueueDw0(0xffff0007), 7);
  const bad = decodeControllerDataQueue({ cdw10: 2 });
  assert.equal(bad.ok ? "" : bad.error, "invalid-sel");
});

test("UDMQ entry: 32 bytes, NSID @0, NLB @4, SLBA @8, byte 31 phase/ESA/DLBA/LBACIR", () => {
  assert.equal(UDMQ_ENTRY_BYTES, 32);
  assert.deepEqual(Esa, {
    None: 0,
    First: 1,
    LastLoggingStopped: 2,
    LastControllerSuspended: 3,
    LastQueueFull: 7,
  });
  assert.deepEqual(Lbacir, { RangeValid: 0, AllChanged: 1, NoRange: 2 });
  const e: UserDataMigrationQueueEntry = {
    nsid: 0x01020304,
    nlb: 0x05060708,
    slba: 0x0000_0a0b_0c0d_0e0f,
    phase: 1,
    esa: Esa.LastQueueFull,
    dlba: true,
    lbacir: Lbacir.NoRange,
  };
  const b = encodeUserDataMigrationQueueEntry(e);
  const expected = new Uint8Array(32);
  expected.set([4, 3, 2, 1, 8, 7, 6, 5, 0x0f, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 0, 0], 0);
  expected[31] = 0x1 | (7 << 1) | (1 << 5) | (2 << 6);
  assert.deepEqual(b, expected);
  assert.deepEqual(decodeUserDataMigrationQueueEntry(b), e);
  for (const [field, value, byte] of [
    ["phase", 1, 0x01],
    ["esa", 3, 0x06],
    ["dlba", true, 0x20],
    ["lbacir", 1, 0x40],
  ] as const) {
    const zero = { nsid: 0, nlb: 0, slba: 0, phase: 0, esa: 0, dlba: false, lbacir: 0 };
    assert.equal(encodeUserDataMigrationQueueEntry({ ...zero, [field]: value })[31], byte, field);
  }
  const q = new Uint8Array(64);
  q.set(b, 32);
  assert.equal(udmqEntryPhase(q, 32), 1);
  assert.equal(udmqEntryPhase(q, 0), 0);
});

test("UDMQ entry round-trips (property)", () => {
  fc.assert(
    fc.property(
      fc.record(
        {
          nsid: fc.integer({ min: 0, max: 0xffffffff }),
          nlb: fc.integer({ min: 0, max: 0xffffffff }),
          slba: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
          phase: fc.integer({ min: 0, max: 1 }),
          esa: fc.integer({ min: 0, max: 7 }),
          dlba: fc.boolean(),
          lbacir: fc.integer({ min: 0, max: 3 }),
        },
        { noNullPrototype: true },
      ),
      (e) => {
        assert.deepEqual(decodeUserDataMigrationQueueEntry(encodeUserDataMigrationQueueEntry(e)), e);
      },
    ),
  );
});
