import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { CommandDwords } from "./codec.ts";
import { checkDwordFields, type DwordField } from "./codec-test-helpers.ts";
import {
  CONTROLLER_DATA_QUEUE_FEATURE_BYTES,
  decodeArbitration,
  decodeAsynchronousEventConfiguration,
  decodeControllerDataQueueFeatureData,
  decodeErrorRecovery,
  decodeFeaturesCdw10,
  decodeInterruptCoalescing,
  decodeInterruptVectorConfiguration,
  decodeNumberOfQueues,
  decodeNumberOfQueuesAllocated,
  decodePowerManagement,
  decodeSetControllerDataQueue,
  decodeTemperatureThreshold,
  decodeVolatileWriteCache,
  decodeWriteAtomicityNormal,
  encodeArbitration,
  encodeAsynchronousEventConfiguration,
  encodeControllerDataQueueFeatureData,
  encodeErrorRecovery,
  encodeFeaturesCdw10,
  encodeInterruptCoalescing,
  encodeInterruptVectorConfiguration,
  encodeNumberOfQueues,
  encodeNumberOfQueuesAllocated,
  encodePowerManagement,
  encodeSetControllerDataQueue,
  encodeTemperatureThreshold,
  encodeVolatileWriteCache,
  encodeWriteAtomicityNormal,
  featuresUuidIndex,
  featureValueCodecs,
} from "./features.ts";
import { FeatureId } from "./identifiers.ts";

/** Single-dword values are checked as CDW11 (where Set Features carries them). */
function checkValue<X extends object>(
  encode: (v: X) => number,
  decode: (dw: number) => X,
  fields: readonly DwordField[],
): void {
  const base = decode(0);
  checkDwordFields<X>({
    base,
    encode: (v) => ({ cdw10: 0, cdw11: encode(v), cdw12: 0, cdw13: 0, cdw14: 0, cdw15: 0 }),
    decode: (c: CommandDwords) => decode(c.cdw11),
    fields,
  });
}

test("Set/Get Features CDW10: FID 7:0, SEL 10:8, SV 31", () => {
  checkDwordFields({
    base: decodeFeaturesCdw10(0),
    encode: (v) => ({ cdw10: encodeFeaturesCdw10(v), cdw11: 0, cdw12: 0, cdw13: 0, cdw14: 0, cdw15: 0 }),
    decode: (c) => decodeFeaturesCdw10(c.cdw10),
    fields: [
      ["fid", "cdw10", 0, 8],
      ["sel", "cdw10", 8, 3],
      ["sv", "cdw10", 31, 1, "bool"],
    ],
  });
  assert.equal(featuresUuidIndex(0xffffffff), 0x7f);
});

test("feature value dwords", () => {
  checkValue(encodeArbitration, decodeArbitration, [
    ["ab", "cdw11", 0, 3],
    ["lpw", "cdw11", 8, 8],
    ["mpw", "cdw11", 16, 8],
    ["hpw", "cdw11", 24, 8],
  ]);
  checkValue(encodePowerManagement, decodePowerManagement, [
    ["ps", "cdw11", 0, 5],
    ["wh", "cdw11", 5, 3],
  ]);
  checkValue(encodeTemperatureThreshold, decodeTemperatureThreshold, [
    ["tmpth", "cdw11", 0, 16],
    ["tmpsel", "cdw11", 16, 4],
    ["thsel", "cdw11", 20, 2],
    ["tmpthh", "cdw11", 22, 3],
  ]);
  checkValue(encodeErrorRecovery, decodeErrorRecovery, [
    ["tler", "cdw11", 0, 16],
    ["dulbe", "cdw11", 16, 1, "bool"],
  ]);
  checkValue(encodeVolatileWriteCache, decodeVolatileWriteCache, [["wce", "cdw11", 0, 1, "bool"]]);
  checkValue(encodeNumberOfQueues, decodeNumberOfQueues, [
    ["nsqr", "cdw11", 0, 16],
    ["ncqr", "cdw11", 16, 16],
  ]);
  checkValue(encodeNumberOfQueuesAllocated, decodeNumberOfQueuesAllocated, [
    ["nsqa", "cdw11", 0, 16],
    ["ncqa", "cdw11", 16, 16],
  ]);
  checkValue(encodeInterruptCoalescing, decodeInterruptCoalescing, [
    ["thr", "cdw11", 0, 8],
    ["time", "cdw11", 8, 8],
  ]);
  checkValue(encodeInterruptVectorConfiguration, decodeInterruptVectorConfiguration, [
    ["iv", "cdw11", 0, 16],
    ["cd", "cdw11", 16, 1, "bool"],
  ]);
  checkValue(encodeWriteAtomicityNormal, decodeWriteAtomicityNormal, [["dn", "cdw11", 0, 1, "bool"]]);
  checkValue(encodeAsynchronousEventConfiguration, decodeAsynchronousEventConfiguration, [
    ["shcw", "cdw11", 0, 8],
    ["nan", "cdw11", 8, 1, "bool"],
    ["fan", "cdw11", 9, 1, "bool"],
    ["tln", "cdw11", 10, 1, "bool"],
    ["anacn", "cdw11", 11, 1, "bool"],
    ["plealcn", "cdw11", 12, 1, "bool"],
    ["lsin", "cdw11", 13, 1, "bool"],
    ["egealcn", "cdw11", 14, 1, "bool"],
    ["nnsshdn", "cdw11", 15, 1, "bool"],
    ["dlpcn", "cdw11", 31, 1, "bool"],
  ]);
});

test("every single-dword FeatureId has a value codec that round-trips its fields", () => {
  const single = Object.values(FeatureId).filter((f) => f !== FeatureId.ControllerDataQueue);
  assert.deepEqual(Object.keys(featureValueCodecs).map(Number).sort(), [...single].sort());
  fc.assert(
    fc.property(fc.constantFrom(...single), fc.integer({ min: 0, max: 0xffffffff }), (fid, dw) => {
      const c = featureValueCodecs[fid as keyof typeof featureValueCodecs];
      const once = c.encode(c.decode(dw) as never);
      assert.equal(c.encode(c.decode(once) as never), once, "decode ∘ encode is stable");
    }),
  );
});

test("TP4159 feature 21h: Set CDW11 CDQID 15:0 + ETPT 31, CDW12 HP, CDW13 TPT; Get data {HP, TPT}", () => {
  const c = encodeSetControllerDataQueue({ cdqid: 0x1234, etpt: true, hp: 0xdeadbeef, tpt: 7 });
  assert.equal(c.cdw10 & 0xff, 0x21);
  assert.equal(c.cdw11, 0x80001234);
  assert.equal(c.cdw12, 0xdeadbeef);
  assert.equal(c.cdw13, 7);
  assert.deepEqual(decodeSetControllerDataQueue(c), { cdqid: 0x1234, etpt: true, hp: 0xdeadbeef, tpt: 7 });
  assert.equal(CONTROLLER_DATA_QUEUE_FEATURE_BYTES, 8);
  const b = encodeControllerDataQueueFeatureData({ hp: 0x01020304, tpt: 0x05060708 });
  assert.deepEqual([...b], [4, 3, 2, 1, 8, 7, 6, 5]);
  assert.deepEqual(decodeControllerDataQueueFeatureData(b), { hp: 0x01020304, tpt: 0x05060708 });
});
