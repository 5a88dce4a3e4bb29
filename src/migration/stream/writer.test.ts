import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { MAX_RECORD_PAYLOAD_BYTES, RecordTag } from "./format.ts";
import { StreamParser } from "./reader.ts";
import { arbRecord, concat, FORMAT_UUID, pattern, writeRecord } from "./test-streams.ts";
import { StreamWriter } from "./writer.ts";

test("pendingBytes tracks writes and reads; drained only after END is read", () => {
  const w = new StreamWriter({ formatUuid: FORMAT_UUID, userData: true });
  const headerBytes = w.pendingBytes;
  assert.equal(headerBytes, 36);
  assert.equal(w.read(0).byteLength, 0);
  w.writeControllerState(pattern(100, 1));
  assert.equal(w.pendingBytes, headerBytes + 116);
  assert.equal(w.read(10).byteLength, 10);
  assert.equal(w.pendingBytes, headerBytes + 106);
  w.read(1 << 20);
  assert.equal(w.pendingBytes, 0);
  assert.equal(w.read(4096).byteLength, 0); // nothing pending: the portal answers ENOMSG here
  assert.equal(w.ended, false);
  w.end();
  assert.equal(w.drained, false);
  assert.equal(w.read(1 << 20).byteLength, 32);
  assert.equal(w.drained, true);
  assert.equal(w.producedBytes, headerBytes + 116 + 32);
});

test("property: reads of any sizes concatenate to the same stream", () => {
  fc.assert(
    fc.property(
      fc.array(arbRecord(), { maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 10 }),
      (records, sizes) => {
        const make = () => {
          const w = new StreamWriter({ formatUuid: FORMAT_UUID, userData: true });
          for (const r of records) writeRecord(w, r);
          w.end();
          return w;
        };
        const whole = make().read(Number.MAX_SAFE_INTEGER);
        const w = make();
        const parts: Uint8Array[] = [];
        for (let k = 0; !w.drained; k++) {
          const size = sizes[k % sizes.length]!;
          const part = w.read(size);
          assert.equal(part.byteLength, Math.min(size, part.byteLength + w.pendingBytes));
          parts.push(part.slice());
        }
        assert.deepEqual(concat(...parts), whole);
      },
    ),
    { numRuns: 200 },
  );
});

test("writeNamespaceDataFrom fills the record straight from a BlockStore", () => {
  const store = createMemoryBlockStore({ lbaBytes: 4096, lbaCount: 1024 });
  store.write(4096 * 10, pattern(8192, 4));
  const w = new StreamWriter({ formatUuid: FORMAT_UUID, userData: true });
  w.writeNamespaceDataFrom({ nsid: 1, slba: 10, nlb: 2, lbaBytes: 4096 }, (dst) =>
    store.read(4096 * 10, dst),
  );
  w.end();
  const p = new StreamParser();
  assert.equal(p.push(w.read(w.pendingBytes)), undefined);
  const result = p.finish();
  assert.ok(result.ok);
  const rec = result.records[0]!;
  assert.equal(rec.tag, RecordTag.NAMESPACE_DATA);
  if (rec.tag === RecordTag.NAMESPACE_DATA) assert.deepEqual(rec.data, pattern(8192, 4));
});

test("changed ranges longer than 2^32 − 1 blocks are split into entries", () => {
  const w = new StreamWriter({ formatUuid: FORMAT_UUID, userData: true });
  w.writeChangedLbaRanges([{ nsid: 2, slba: 10, nlb: 2 ** 33 }]);
  w.writeChangedLbaRanges([]); // nothing
  w.end();
  const p = new StreamParser();
  p.push(w.read(w.pendingBytes));
  const result = p.finish();
  assert.ok(result.ok);
  assert.deepEqual(result.records, [
    {
      tag: RecordTag.CHANGED_LBA_RANGES,
      ranges: [
        { nsid: 2, slba: 10, nlb: 0xffffffff },
        { nsid: 2, slba: 10 + 0xffffffff, nlb: 0xffffffff },
        { nsid: 2, slba: 10 + 2 * 0xffffffff, nlb: 2 },
      ],
    },
  ]);
});

test("misuse is a bug: RangeError", () => {
  assert.throws(() => new StreamWriter({ formatUuid: "nope" }), RangeError);
  assert.throws(() => new StreamWriter({ formatUuid: FORMAT_UUID, identity: "x".repeat(1025) }), RangeError);
  assert.throws(() => new StreamWriter({ formatUuid: FORMAT_UUID, version: 3 as 2 }), RangeError);
  const noData = new StreamWriter({ formatUuid: FORMAT_UUID });
  assert.throws(
    () => noData.writeNamespaceData({ nsid: 1, slba: 0, nlb: 1, lbaBytes: 512 }, new Uint8Array(512)),
    RangeError,
  );
  assert.throws(() => noData.writeChangedLbaRanges([{ nsid: 1, slba: 0, nlb: 1 }]), RangeError);
  const w = new StreamWriter({ formatUuid: FORMAT_UUID, userData: true });
  assert.throws(
    () => w.writeNamespaceData({ nsid: 0, slba: 0, nlb: 1, lbaBytes: 512 }, new Uint8Array(512)),
    RangeError,
  );
  assert.throws(
    () => w.writeNamespaceData({ nsid: 1, slba: 0, nlb: 2, lbaBytes: 512 }, new Uint8Array(512)),
    RangeError,
  );
  assert.throws(
    () => w.writeNamespaceData({ nsid: 1, slba: 0, nlb: 4096, lbaBytes: 4096 }, new Uint8Array(4096 * 4096)),
    RangeError,
  );
  assert.throws(() => w.writeControllerState(new Uint8Array(0)), RangeError);
  assert.throws(() => w.writeControllerState(new Uint8Array(MAX_RECORD_PAYLOAD_BYTES + 1)), RangeError);
  assert.throws(() => w.writeChangedLbaRanges([{ nsid: 1, slba: 0, nlb: 0 }]), RangeError);
  assert.throws(() => w.writeStopCopySizeHint(-1), RangeError);
  assert.throws(() => w.read(-1), RangeError);
  w.end();
  assert.throws(() => w.writeControllerState(new Uint8Array(1)), RangeError);
  assert.throws(() => w.end(), RangeError);
});
