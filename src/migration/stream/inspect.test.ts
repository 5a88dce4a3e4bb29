import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { captureControllerState } from "../../controller/migration/controller-state.ts";
import { TestHost } from "../../controller/test-support.ts";
import { RecordTag, type StreamRecord } from "./format.ts";
import {
  type InspectedRecord,
  inspectMigrationStream,
  looksLikeMigrationStream,
  type StreamInspection,
  StreamInspector,
} from "./inspect.ts";
import { arbRecord, buildStream, expectedRecords, pattern } from "./test-streams.ts";

function inspected(bytes: Uint8Array, maxListedRecords?: number): StreamInspection {
  const r = inspectMigrationStream(bytes, { maxListedRecords });
  if ("error" in r) assert.fail(r.error);
  return r;
}

async function capturedState(): Promise<Uint8Array> {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1, 16, 1);
  h.controller.suspended = true;
  return captureControllerState(h.controller);
}

/** The record header found at `offsetBytes` names the listed tag and payload length. */
function assertOffsets(bytes: Uint8Array, records: readonly InspectedRecord[]): void {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const r of records) {
    assert.equal(v.getUint32(r.offsetBytes, true), r.tag, `tag at ${r.offsetBytes}`);
    assert.equal(v.getUint32(r.offsetBytes + 8, true), r.payloadBytes, `length at ${r.offsetBytes}`);
  }
}

test("every record type is listed with its fields and offset; CONTROLLER_STATE is decoded; END summary", async () => {
  const state = await capturedState();
  const records: StreamRecord[] = [
    { tag: RecordTag.STOP_COPY_SIZE_HINT, stopCopyBytes: 123_456 },
    { tag: RecordTag.NAMESPACE_DATA, nsid: 1, slba: 64, nlb: 2, lbaBytes: 512, data: pattern(1024, 1) },
    {
      tag: RecordTag.CHANGED_LBA_RANGES,
      ranges: [
        { nsid: 1, slba: 0, nlb: 8 },
        { nsid: 2, slba: 100, nlb: 1 },
      ],
    },
    { tag: RecordTag.CONTROLLER_STATE, state },
  ];
  const bytes = buildStream(records, { identity: "nvmig test cntlid=1" });
  assert.ok(looksLikeMigrationStream(bytes));
  const r = inspected(bytes);
  assert.equal(r.kind, "nvmig-migration-stream");
  assert.equal(r.bytes, bytes.byteLength);
  assert.deepEqual(r.header.flags, { raw: "0x0001", userData: true });
  assert.equal(r.header.identity, "nvmig test cntlid=1");
  assert.equal(r.header.version, 2);
  assert.equal(r.recordCount, 4);
  assert.equal(r.recordsTruncated, false);
  assert.deepEqual(
    r.records.map((x) => x.tagName),
    ["STOP_COPY_SIZE_HINT", "NAMESPACE_DATA", "CHANGED_LBA_RANGES", "CONTROLLER_STATE"],
  );
  assertOffsets(bytes, r.records);
  const [hint, data, ranges, cs] = r.records;
  assert.ok(hint?.tagName === "STOP_COPY_SIZE_HINT" && hint.stopCopyBytes === 123_456);
  assert.ok(data?.tagName === "NAMESPACE_DATA");
  assert.deepEqual(
    { nsid: data.nsid, slba: data.slba, nlb: data.nlb, lbaBytes: data.lbaBytes, dataBytes: data.dataBytes },
    { nsid: 1, slba: 64, nlb: 2, lbaBytes: 512, dataBytes: 1024 },
  );
  assert.ok(ranges?.tagName === "CHANGED_LBA_RANGES" && ranges.count === 2);
  assert.deepEqual(ranges.ranges[1], { nsid: 2, slba: 100, nlb: 1 });
  assert.ok(cs?.tagName === "CONTROLLER_STATE");
  assert.ok(!("error" in cs.controllerState));
  assert.equal(cs.controllerState.nvmeControllerState?.niosq, 1);
  assert.equal(cs.payloadBytes, state.byteLength);
  assert.deepEqual(r.countsByTag.NAMESPACE_DATA, { records: 1, payloadBytes: 24 + 1024 });
  assert.equal(r.end?.recordCount, 4);
  assert.equal(r.end?.streamBytes, bytes.byteLength - 32);
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
});

test("a CONTROLLER_STATE record that is not a valid controller state is shown with its error", () => {
  const r = inspected(buildStream([{ tag: RecordTag.CONTROLLER_STATE, state: new Uint8Array(12) }]));
  const cs = r.records[0];
  assert.ok(cs?.tagName === "CONTROLLER_STATE" && "error" in cs.controllerState);
  assert.match(cs.controllerState.error, /header needs 48/);
});

test("maxListedRecords: the rest are counted, CONTROLLER_STATE records are still listed", async () => {
  const state = await capturedState();
  const hints: StreamRecord[] = Array.from({ length: 10 }, (_, i) => ({
    tag: RecordTag.STOP_COPY_SIZE_HINT,
    stopCopyBytes: i,
  }));
  const bytes = buildStream([...hints, { tag: RecordTag.CONTROLLER_STATE, state }]);
  const r = inspected(bytes, 3);
  assert.equal(r.recordCount, 11);
  assert.equal(r.recordsTruncated, true);
  assert.deepEqual(
    r.records.map((x) => x.index),
    [0, 1, 2, 10],
  );
  assert.equal(r.records[3]?.tagName, "CONTROLLER_STATE");
  assertOffsets(bytes, r.records);
  assert.deepEqual(r.countsByTag.STOP_COPY_SIZE_HINT, { records: 10, payloadBytes: 80 });
  assert.throws(() => new StreamInspector({ maxListedRecords: -1 }), RangeError);
});

test("a version 1 stream has no END summary", () => {
  const r = inspected(
    buildStream([{ tag: RecordTag.STOP_COPY_SIZE_HINT, stopCopyBytes: 1 }], { version: 1 }),
  );
  assert.equal(r.header.version, 1);
  assert.equal(r.end, null);
});

test("refused streams are an error value with the parser's code: corrupt, truncated, foreign", () => {
  const bytes = buildStream([{ tag: RecordTag.STOP_COPY_SIZE_HINT, stopCopyBytes: 7 }]);
  const corrupt = bytes.slice();
  corrupt[bytes.byteLength - 40] = (corrupt[bytes.byteLength - 40] ?? 0) ^ 0xff;
  const c = inspectMigrationStream(corrupt);
  assert.ok("error" in c);
  assert.match(c.error, /^device migration stream refused: crc-mismatch at byte \d+/);
  const t = inspectMigrationStream(bytes.subarray(0, bytes.byteLength - 5));
  assert.ok("error" in t);
  assert.match(t.error, /truncated/);
  const foreign = new TextEncoder().encode("hello, this is not a stream at all");
  assert.equal(looksLikeMigrationStream(foreign), false);
  assert.equal(looksLikeMigrationStream(bytes.subarray(0, 5)), false);
  const f = inspectMigrationStream(foreign);
  assert.ok("error" in f);
  assert.match(f.error, /bad-magic/);
});

test("push after finish is our bug and throws; finish is idempotent", () => {
  const i = new StreamInspector();
  i.push(buildStream([]));
  const first = i.finish();
  assert.equal(i.finish(), first);
  assert.throws(() => i.push(new Uint8Array(1)));
});

test("property: chunked pushes give the same inspection as one push, records as written", () => {
  fc.assert(
    fc.property(
      fc.array(arbRecord(), { maxLength: 6 }),
      fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 5 }),
      (records, sizes) => {
        const bytes = buildStream(records);
        const whole = inspected(bytes);
        const inspector = new StreamInspector();
        for (let at = 0, k = 0; at < bytes.byteLength; k++) {
          const n = sizes[k % sizes.length]!;
          assert.ok(inspector.push(bytes.subarray(at, at + n)));
          at += n;
        }
        assert.deepEqual(inspector.finish(), whole);
        const expected = expectedRecords(records);
        assert.equal(whole.recordCount, expected.length);
        assert.deepEqual(
          whole.records.map((x) => x.tag),
          expected.map((x) => x.tag),
        );
        assertOffsets(bytes, whole.records);
      },
    ),
    { numRuns: 100 },
  );
});

test("property: damaged streams never throw; every damaged byte is refused (CRC-32C)", () => {
  const bytes = buildStream([
    { tag: RecordTag.STOP_COPY_SIZE_HINT, stopCopyBytes: 99 },
    { tag: RecordTag.CHANGED_LBA_RANGES, ranges: [{ nsid: 1, slba: 5, nlb: 3 }] },
  ]);
  fc.assert(
    fc.property(fc.nat({ max: bytes.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const damaged = bytes.slice();
      damaged[at] = (damaged[at] ?? 0) ^ x;
      const r = inspectMigrationStream(damaged);
      assert.ok("error" in r, `byte ${at} ^ ${x} was not detected`);
    }),
    { numRuns: 200 },
  );
});
