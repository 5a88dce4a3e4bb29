import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { type ByteField, checkStructFields } from "./codec-test-helpers.ts";
import {
  CONTROLLER_STATE_HEADER_BYTES,
  type ControllerState,
  type ControllerStateError,
  CSATTR_SUSPENDED,
  controllerStateBlobBytes,
  controllerStateBytes,
  decodeControllerState,
  decodeControllerStateHeader,
  decodeIoCompletionQueueState,
  decodeIocqa,
  decodeIoSubmissionQueueState,
  decodeIosqa,
  decodeNvmeControllerState,
  encodeControllerState,
  encodeControllerStateHeader,
  encodeIoCompletionQueueState,
  encodeIocqa,
  encodeIoSubmissionQueueState,
  encodeIosqa,
  encodeNvmeControllerState,
  IO_CQ_STATE_BYTES,
  IO_SQ_STATE_BYTES,
  type IoCompletionQueueState,
  type IoSubmissionQueueState,
  NVME_CONTROLLER_STATE_HEADER_BYTES,
} from "./controller-state.ts";

// Reference §4.6 (libnvme nvme_lm_controller_state_data_header and the queue entry structures).
const HEADER: readonly ByteField[] = [
  ["ver", 0, "u16"],
  ["csattr", 2, "u8"],
  ["nvmecss", 16, "u128"],
  ["vss", 32, "u128"],
];
const SQ: readonly ByteField[] = [
  ["iosqprp1", 0, "u64n"],
  ["iosqqsize", 8, "u16"],
  ["iosqqid", 10, "u16"],
  ["iosqcqid", 12, "u16"],
  ["iosqa", 14, "u16"],
  ["iosqhp", 16, "u16"],
  ["iosqtp", 18, "u16"],
];
const CQ: readonly ByteField[] = [
  ["iocqprp1", 0, "u64n"],
  ["iocqqsize", 8, "u16"],
  ["iocqqid", 10, "u16"],
  ["iocqhp", 12, "u16"],
  ["iocqtp", 14, "u16"],
  ["iocqa", 16, "u32"],
];

test("sizes: header 48, NVMe state header 8, SQ and CQ entries 24", () => {
  assert.equal(CONTROLLER_STATE_HEADER_BYTES, 48);
  assert.equal(NVME_CONTROLLER_STATE_HEADER_BYTES, 8);
  assert.equal(IO_SQ_STATE_BYTES, 24);
  assert.equal(IO_CQ_STATE_BYTES, 24);
  assert.equal(CSATTR_SUSPENDED, 1);
});

test("header, SQ entry and CQ entry fields sit at their offsets", () => {
  checkStructFields({
    size: 48,
    make: () => decodeControllerStateHeader(new Uint8Array(48)),
    encode: (v) => encodeControllerStateHeader(v),
    decode: decodeControllerStateHeader,
    fields: HEADER,
  });
  checkStructFields({
    size: 24,
    make: () => decodeIoSubmissionQueueState(new Uint8Array(24)),
    encode: (v) => encodeIoSubmissionQueueState(v),
    decode: decodeIoSubmissionQueueState,
    fields: SQ,
  });
  checkStructFields({
    size: 24,
    make: () => decodeIoCompletionQueueState(new Uint8Array(24)),
    encode: (v) => encodeIoCompletionQueueState(v),
    decode: decodeIoCompletionQueueState,
    fields: CQ,
  });
});

test("IOSQA: PC bit 0, QPRIO 2:1; IOCQA: PC 0, IEN 1, S0PT 2, IV 31:16", () => {
  assert.equal(encodeIosqa({ pc: true, qprio: 0 }), 1);
  assert.equal(encodeIosqa({ pc: false, qprio: 3 }), 6);
  assert.deepEqual(decodeIosqa(7), { pc: true, qprio: 3 });
  assert.equal(encodeIocqa({ pc: true, ien: false, s0pt: 0, iv: 0 }), 1);
  assert.equal(encodeIocqa({ pc: false, ien: true, s0pt: 0, iv: 0 }), 2);
  assert.equal(encodeIocqa({ pc: false, ien: false, s0pt: 1, iv: 0 }), 4);
  assert.equal(encodeIocqa({ pc: false, ien: false, s0pt: 0, iv: 0xffff }), 0xffff0000);
  assert.deepEqual(decodeIocqa(0x00050007), { pc: true, ien: true, s0pt: 1, iv: 5 });
});

const sq = (qid: number): IoSubmissionQueueState => ({
  iosqprp1: 0x1000 * qid,
  iosqqsize: 63,
  iosqqid: qid,
  iosqcqid: qid,
  iosqa: encodeIosqa({ pc: true, qprio: 0 }),
  iosqhp: 3,
  iosqtp: 5,
});
const cq = (qid: number): IoCompletionQueueState => ({
  iocqprp1: 0x10000 * qid,
  iocqqsize: 63,
  iocqqid: qid,
  iocqhp: 2,
  iocqtp: 4,
  iocqa: encodeIocqa({ pc: true, ien: true, s0pt: 1, iv: qid }),
});

test("whole blob: header sizes in dwords, NVMe state, SQ entries then CQ entries, then vendor bytes", () => {
  const state: ControllerState = {
    ver: 0,
    csattr: CSATTR_SUSPENDED,
    nvme: { ver: 0x0102, sqs: [sq(1), sq(2)], cqs: [cq(1)] },
    vendor: Uint8Array.of(0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4),
  };
  const b = encodeControllerState(state);
  const nvmeBytes = 8 + 24 * 3;
  assert.equal(b.byteLength, 48 + nvmeBytes + 8);
  assert.equal(controllerStateBlobBytes(state), b.byteLength);
  const h = decodeControllerStateHeader(b);
  assert.deepEqual(h, { ver: 0, csattr: 1, nvmecss: BigInt(nvmeBytes / 4), vss: 2n });
  const v = new DataView(b.buffer);
  assert.equal(v.getUint16(48, true), 0x0102); // NVMe state VER
  assert.equal(v.getUint16(50, true), 2); // NIOSQ
  assert.equal(v.getUint16(52, true), 1); // NIOCQ
  assert.equal(v.getUint16(54, true), 0); // reserved
  assert.deepEqual(b.subarray(56, 80), encodeIoSubmissionQueueState(sq(1)));
  assert.deepEqual(b.subarray(80, 104), encodeIoSubmissionQueueState(sq(2)));
  assert.deepEqual(b.subarray(104, 128), encodeIoCompletionQueueState(cq(1)));
  assert.deepEqual([...b.subarray(128)], [0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4]);
  const d = decodeControllerState(b);
  assert.ok(d.ok);
  assert.deepEqual(d.value, state);
  assert.throws(() => encodeControllerState({ ...state, vendor: new Uint8Array(3) }), RangeError);
});

test("NVMECSS 0 means no NVMe Controller State", () => {
  const b = encodeControllerState({ ver: 1, csattr: 0, nvme: undefined, vendor: new Uint8Array(4) });
  assert.equal(b.byteLength, 52);
  const d = decodeControllerState(b);
  assert.ok(d.ok);
  assert.equal(d.value.nvme, undefined);
});

function errorOf(b: Uint8Array): ControllerStateError | "ok" {
  const r = decodeControllerState(b);
  return r.ok ? "ok" : r.error;
}

test("malformed blobs are error values, never exceptions", () => {
  const good = encodeControllerState({
    ver: 0,
    csattr: 0,
    nvme: { ver: 0, sqs: [sq(1)], cqs: [cq(1)] },
    vendor: new Uint8Array(8),
  });
  assert.equal(errorOf(good), "ok");
  assert.equal(errorOf(good.subarray(0, 47)), "truncated");
  assert.equal(errorOf(good.subarray(0, good.byteLength - 4)), "truncated");
  const longer = new Uint8Array(good.byteLength + 4);
  longer.set(good);
  assert.equal(errorOf(longer), "size-mismatch");

  const huge = good.slice();
  huge.fill(0xff, 16, 32); // NVMECSS = 2^128 - 1
  assert.equal(errorOf(huge), "too-large");
  assert.deepEqual(controllerStateBytes(decodeControllerStateHeader(huge)).ok, false);

  const moreSqs = good.slice();
  new DataView(moreSqs.buffer).setUint16(50, 2, true); // NIOSQ 2 but only 1 entry present
  assert.equal(errorOf(moreSqs), "nvme-state-truncated");
  const fewerCqs = good.slice();
  new DataView(fewerCqs.buffer).setUint16(52, 0, true); // NIOCQ 0 but a CQ entry present
  assert.equal(errorOf(fewerCqs), "nvme-state-size-mismatch");

  const tinyNvme = encodeControllerStateHeader({ ver: 0, csattr: 0, nvmecss: 1n, vss: 0n });
  const blob = new Uint8Array(52);
  blob.set(tinyNvme);
  assert.equal(errorOf(blob), "nvme-state-truncated");
  const nvmeOnly = decodeNvmeControllerState(new Uint8Array(4));
  assert.equal(nvmeOnly.ok, false);
});

const sqArb = fc.record(
  {
    iosqprp1: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
    iosqqsize: fc.integer({ min: 0, max: 0xffff }),
    iosqqid: fc.integer({ min: 0, max: 0xffff }),
    iosqcqid: fc.integer({ min: 0, max: 0xffff }),
    iosqa: fc.integer({ min: 0, max: 0xffff }),
    iosqhp: fc.integer({ min: 0, max: 0xffff }),
    iosqtp: fc.integer({ min: 0, max: 0xffff }),
  },
  { noNullPrototype: true },
);
const cqArb = fc.record(
  {
    iocqprp1: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER - 1 }),
    iocqqsize: fc.integer({ min: 0, max: 0xffff }),
    iocqqid: fc.integer({ min: 0, max: 0xffff }),
    iocqhp: fc.integer({ min: 0, max: 0xffff }),
    iocqtp: fc.integer({ min: 0, max: 0xffff }),
    iocqa: fc.integer({ min: 0, max: 0xffffffff }),
  },
  { noNullPrototype: true },
);
const stateArb: fc.Arbitrary<ControllerState> = fc.record(
  {
    ver: fc.integer({ min: 0, max: 0xffff }),
    csattr: fc.integer({ min: 0, max: 0xff }),
    nvme: fc.option(
      fc.record(
        {
          ver: fc.integer({ min: 0, max: 0xffff }),
          sqs: fc.array(sqArb, { maxLength: 8 }),
          cqs: fc.array(cqArb, { maxLength: 8 }),
        },
        { noNullPrototype: true },
      ),
      { nil: undefined },
    ),
    vendor: fc
      .integer({ min: 0, max: 16 })
      .chain((n) => fc.uint8Array({ minLength: 4 * n, maxLength: 4 * n })),
  },
  { noNullPrototype: true },
);

test("controller state round-trips (property)", () => {
  fc.assert(
    fc.property(stateArb, (s) => {
      const d = decodeControllerState(encodeControllerState(s));
      assert.ok(d.ok);
      assert.deepEqual(d.value, s);
      assert.deepEqual(
        decodeNvmeControllerState(encodeNvmeControllerState(s.nvme ?? { ver: 0, sqs: [], cqs: [] })).ok,
        true,
      );
    }),
    { numRuns: 100 },
  );
});

test("corrupted or arbitrary bytes decode to a value or a closed error, never throw (property)", () => {
  const codes = new Set([
    "ok",
    "truncated",
    "size-mismatch",
    "too-large",
    "nvme-state-truncated",
    "nvme-state-size-mismatch",
  ]);
  fc.assert(
    fc.property(
      stateArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      fc.nat(),
      (s, flips, cut) => {
        const b = encodeControllerState(s);
        for (const [at, x] of flips) b[at % b.byteLength] = x;
        assert.ok(codes.has(errorOf(b)));
        assert.ok(codes.has(errorOf(b.subarray(0, cut % (b.byteLength + 1)))));
      },
    ),
    { numRuns: 200 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (raw) => {
      assert.ok(codes.has(errorOf(raw)));
    }),
    { numRuns: 200 },
  );
});
