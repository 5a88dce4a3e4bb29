import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { crc32c } from "./crc32c.ts";
import {
  encodeEndSummary,
  RECORD_HEADER_BYTES,
  RecordFlag,
  RecordTag,
  STREAM_VERSION,
  STREAM_VERSION_PREVIOUS,
  type StreamRecord,
} from "./format.ts";
import { type ParseResult, StreamParser } from "./reader.ts";
import type { StreamErrorCode } from "./stream-error.ts";
import {
  arbRecord,
  buildStream,
  concat,
  expectedRecords,
  FORMAT_UUID,
  parseChunked,
  pattern,
  writeRecord,
} from "./test-streams.ts";
import { StreamWriter } from "./writer.ts";

const sample: StreamRecord[] = [
  { tag: RecordTag.STOP_COPY_SIZE_HINT, stopCopyBytes: 123456 },
  { tag: RecordTag.NAMESPACE_DATA, nsid: 1, slba: 8, nlb: 2, lbaBytes: 512, data: pattern(1024, 1) },
  { tag: RecordTag.CHANGED_LBA_RANGES, ranges: [{ nsid: 1, slba: 64, nlb: 8 }] },
  { tag: RecordTag.CONTROLLER_STATE, state: pattern(200, 2) },
];

function errorCode(r: ParseResult): StreamErrorCode | "ok" {
  return r.ok ? "ok" : r.error.code;
}

/** A writer with the user-data flag, for hand-made records. */
function writer(version = STREAM_VERSION as 1 | 2): StreamWriter {
  return new StreamWriter({ formatUuid: FORMAT_UUID, identity: "vf1", userData: true, version });
}

function drain(w: StreamWriter): Uint8Array {
  return w.read(w.pendingBytes);
}

/** Byte offsets where each record of `bytes` starts (after the header), and where the header ends. */
function recordStarts(bytes: Uint8Array, headerBytes: number): number[] {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const starts: number[] = [];
  for (let at = headerBytes; at < bytes.byteLength; at += RECORD_HEADER_BYTES + v.getUint32(at + 8, true)) {
    starts.push(at);
  }
  return starts;
}

test("round trip: header and records come back in order", () => {
  const result = parseChunked(buildStream(sample));
  assert.ok(result.ok, errorCode(result));
  assert.deepEqual(result.header, {
    version: STREAM_VERSION,
    flags: 1,
    formatUuid: FORMAT_UUID,
    identity: "nvmig test",
  });
  assert.deepEqual(result.records, sample);
  assert.equal(result.end?.recordCount, 4);
  assert.equal(result.skippedCount, 0);
});

test("property: round trip with random records and random chunk boundaries", () => {
  fc.assert(
    fc.property(
      fc.array(arbRecord(), { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }),
      fc.boolean(),
      (records, sizes, previous) => {
        const version = previous ? STREAM_VERSION_PREVIOUS : STREAM_VERSION;
        const bytes = buildStream(records, { version });
        const result = parseChunked(bytes, sizes);
        assert.ok(result.ok, errorCode(result));
        assert.deepEqual(result.records, expectedRecords(records));
        assert.equal(result.streamBytes, bytes.byteLength);
        assert.equal(result.header.version, version);
      },
    ),
    { numRuns: 300 },
  );
});

test("previous version (1) is accepted; its END carries no summary", () => {
  const result = parseChunked(buildStream(sample, { version: STREAM_VERSION_PREVIOUS }), [7]);
  assert.ok(result.ok);
  assert.equal(result.header.version, 1);
  assert.equal(result.end, undefined);
  assert.deepEqual(result.records, sample);
});

test("future and ancient versions are refused before anything else is read", () => {
  for (const version of [0, 3, 0xffff]) {
    const bytes = buildStream(sample);
    new DataView(bytes.buffer).setUint16(8, version, true);
    const p = new StreamParser();
    const err = p.push(bytes.subarray(0, 10));
    assert.equal(err?.code, "unsupported-version");
    assert.equal(errorCode(p.finish()), "unsupported-version");
  }
});

test("unknown optional tag is skipped (checksummed, never buffered); unknown mandatory is refused", () => {
  const w = writer();
  w.writeRawRecord(0x1000, RecordFlag.OPTIONAL, pattern(5000, 3));
  writeRecord(w, sample[3]!);
  w.end();
  const bytes = drain(w);
  let maxHeld = 0;
  const result = parseChunked(bytes, [100], {}, (p) => {
    maxHeld = Math.max(maxHeld, p.bytesHeld());
  });
  assert.ok(result.ok);
  assert.deepEqual(result.skipped, [{ tag: 0x1000, lengthBytes: 5000, offsetBytes: 39 }]);
  assert.deepEqual(result.records, [sample[3]]);
  assert.equal(maxHeld, 200 + 16, "only CONTROLLER_STATE and END payloads are ever held");

  const m = writer();
  m.writeRawRecord(0x1000, 0, pattern(10, 3));
  m.end();
  const refused = parseChunked(drain(m));
  assert.equal(errorCode(refused), "unknown-mandatory-tag");
  if (!refused.ok) assert.equal(refused.error.offsetBytes, 39);
});

test("each error code is reachable and reported", () => {
  const good = buildStream(sample);
  const expect = (bytes: Uint8Array, code: StreamErrorCode, options = {}) =>
    assert.equal(errorCode(parseChunked(bytes, [3], options)), code, code);

  // bad-magic
  const magic = good.slice();
  magic[7] = 0x58;
  expect(magic, "bad-magic");
  expect(new TextEncoder().encode("GET / HTTP/1.1\r\n"), "bad-magic");
  // unsupported-version
  const v3 = good.slice();
  v3[8] = 3;
  expect(v3, "unsupported-version");
  // truncated (empty, in the header, in a record)
  expect(new Uint8Array(0), "truncated");
  expect(good.subarray(0, 20), "truncated");
  expect(good.subarray(0, good.byteLength - 1), "truncated");
  // crc-mismatch: header, payload, and the END chain (two records swapped)
  const headerFlip = good.slice();
  headerFlip[33] = headerFlip[33]! ^ 1;
  expect(headerFlip, "crc-mismatch");
  const payloadFlip = good.slice();
  payloadFlip[good.byteLength - 40] = payloadFlip[good.byteLength - 40]! ^ 0x80;
  expect(payloadFlip, "crc-mismatch");
  const starts = recordStarts(good, 46);
  const [a, b, c] = [starts[1]!, starts[2]!, starts[3]!];
  const swapped = concat(good.subarray(0, a), good.subarray(b, c), good.subarray(a, b), good.subarray(c));
  expect(swapped, "crc-mismatch");
  // record-too-large: declared length over the limit; retained bytes over the limit
  expect(good, "record-too-large", { maxRecordPayloadBytes: 1000 });
  expect(good, "record-too-large", { maxRetainedBytes: 1100 });
  // unknown-mandatory-tag
  const unknown = writer();
  unknown.writeRawRecord(77, 0, new Uint8Array(4));
  unknown.end();
  expect(drain(unknown), "unknown-mandatory-tag");
  // missing-end
  expect(buildStream(sample, { end: false }), "missing-end");
  expect(buildStream([], { end: false }), "missing-end");
  // data-after-end
  expect(concat(good, new Uint8Array(1)), "data-after-end");
  expect(concat(good, good), "data-after-end");
  // malformed-record: reserved flags, tag 0, bad layout, END summary lying about the count
  for (const [tag, flags, payload] of [
    [RecordTag.CONTROLLER_STATE, 2, new Uint8Array(4)],
    [0, RecordFlag.OPTIONAL, new Uint8Array(4)],
    [RecordTag.NAMESPACE_DATA, 0, new Uint8Array(24 + 1000)],
    [RecordTag.STOP_COPY_SIZE_HINT, 1, new Uint8Array(4)],
    [RecordTag.CHANGED_LBA_RANGES, 0, new Uint8Array(8 + 15)],
  ] as const) {
    const w = writer();
    w.writeRawRecord(tag, flags, payload);
    w.end();
    expect(drain(w), "malformed-record");
  }
  const lying = writer();
  lying.writeControllerState(new Uint8Array(4));
  lying.writeRawRecord(
    RecordTag.END,
    0,
    encodeEndSummary({ recordCount: 2, chainCrc32c: 0, streamBytes: 0 }),
  );
  expect(drain(lying), "crc-mismatch");
});

test("malformed payloads the CRC cannot catch (the writer wrote them) are refused", () => {
  const nsData = new Uint8Array(24 + 512);
  const v = new DataView(nsData.buffer);
  const cases: Array<(dv: DataView) => void> = [
    (dv) => dv.setUint32(0, 0, true), // nsid 0
    (dv) => dv.setUint32(0, 0xffffffff, true), // broadcast nsid
    (dv) => dv.setUint32(4, 2, true), // nlb disagrees with the data length
    (dv) => dv.setUint32(16, 1024, true), // lbaBytes
    (dv) => dv.setUint32(20, 1, true), // reserved
    (dv) => dv.setUint32(12, 0x00400000, true), // slba beyond 2^53
  ];
  for (const mutate of cases) {
    v.setUint32(0, 1, true);
    v.setUint32(4, 1, true);
    v.setUint32(8, 0, true);
    v.setUint32(12, 0, true);
    v.setUint32(16, 512, true);
    v.setUint32(20, 0, true);
    mutate(v);
    const w = writer();
    w.writeRawRecord(RecordTag.NAMESPACE_DATA, 0, nsData);
    w.end();
    assert.equal(errorCode(parseChunked(drain(w))), "malformed-record");
  }
  // User-data records in a stream that did not announce USER_DATA.
  const plain = new StreamWriter({ formatUuid: FORMAT_UUID });
  plain.writeRawRecord(RecordTag.CHANGED_LBA_RANGES, 0, new Uint8Array(8));
  plain.end();
  assert.equal(errorCode(parseChunked(drain(plain))), "malformed-record");
  // A v1 END with a summary, a v2 END without one.
  const v1 = writer(1);
  v1.writeRawRecord(RecordTag.END, 0, new Uint8Array(16));
  assert.equal(errorCode(parseChunked(drain(v1))), "malformed-record");
  const v2 = writer(2);
  v2.writeRawRecord(RecordTag.END, 0, new Uint8Array(0));
  assert.equal(errorCode(parseChunked(drain(v2))), "malformed-record");
});

test("a header with an invalid UTF-8 identity (and a valid CRC) is malformed", () => {
  const bytes = buildStream([], { identity: "ab" });
  bytes[32] = 0xff;
  new DataView(bytes.buffer).setUint32(34, crc32c(bytes.subarray(0, 34)), true);
  assert.equal(errorCode(parseChunked(bytes)), "malformed-record");
});

test("a huge declared length fails at the record header, before any payload arrives or is allocated", () => {
  const w = writer();
  w.writeControllerState(new Uint8Array(8));
  const bytes = drain(w);
  new DataView(bytes.buffer).setUint32(39 + 8, 0xffffffff, true); // header with identity "vf1": 39 bytes
  const p = new StreamParser();
  const err = p.push(bytes.subarray(0, 39 + 16));
  assert.equal(err?.code, "record-too-large");
  assert.equal(err?.offsetBytes, 39);
  assert.equal(p.peakBytesHeld(), 0);
  assert.equal(p.push(new Uint8Array(10))?.code, "record-too-large"); // sticky
});

test("property: truncation anywhere is refused (truncated, or missing-end on a record boundary)", () => {
  const bytes = buildStream(sample);
  const boundaries = new Set([...recordStarts(bytes, 46), bytes.byteLength]);
  for (let cut = 0; cut < bytes.byteLength; cut++) {
    const code = errorCode(parseChunked(bytes.subarray(0, cut), [5]));
    assert.equal(code, boundaries.has(cut) && cut >= 46 ? "missing-end" : "truncated", `cut at ${cut}`);
  }
});

test("property: flipping any byte is refused, never thrown, never accepted", () => {
  const bytes = buildStream(sample);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: bytes.byteLength - 1 }),
      fc.integer({ min: 1, max: 255 }),
      fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 4 }),
      (at, xor, sizes) => {
        const bad = bytes.slice();
        bad[at] = bad[at]! ^ xor;
        const result = parseChunked(bad, sizes);
        assert.equal(result.ok, false, `flip at ${at} accepted`);
      },
    ),
    { numRuns: 1500 },
  );
});

test("onRecord receives records as they validate and nothing is retained", () => {
  const seen: StreamRecord[] = [];
  const p = new StreamParser({ onRecord: (r) => seen.push(r), maxRetainedBytes: 0 });
  p.push(buildStream(sample));
  const result = p.finish();
  assert.ok(result.ok);
  assert.deepEqual(seen, sample);
  assert.deepEqual(result.records, []);
  assert.equal(p.bytesHeld(), 0);
});

test("finish is idempotent; push after finish is a bug", () => {
  const p = new StreamParser();
  p.push(buildStream(sample));
  const first = p.finish();
  assert.equal(p.finish(), first);
  assert.throws(() => p.push(new Uint8Array(1)));
  assert.throws(() => new StreamParser({ maxRecordPayloadBytes: 2 ** 30 }), RangeError);
});
