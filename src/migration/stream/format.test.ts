import assert from "node:assert/strict";
import { test } from "node:test";
import { crc32c } from "./crc32c.ts";
import {
  CHANGED_LBA_RANGE_ENTRY_BYTES,
  END_SUMMARY_BYTES,
  MAX_CHANGED_LBA_RANGES_PER_RECORD,
  MAX_RECORD_PAYLOAD_BYTES,
  maxNamespaceDataLbas,
  NAMESPACE_DATA_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  RecordOffset,
  RecordTag,
  STREAM_HEADER_FIXED_BYTES,
  STREAM_MAGIC,
  STREAM_VERSION,
  StreamHeaderOffset,
  uuidFromBytes,
  uuidToBytes,
} from "./format.ts";
import { FORMAT_UUID, pattern } from "./test-streams.ts";
import { StreamWriter } from "./writer.ts";

test("sizes and limits are the documented ones", () => {
  assert.equal(new TextDecoder().decode(STREAM_MAGIC), "NVMIGSTR");
  assert.equal(STREAM_HEADER_FIXED_BYTES, 32);
  assert.equal(RECORD_HEADER_BYTES, 16);
  assert.deepEqual(RecordOffset, { TAG: 0, FLAGS: 4, LENGTH_BYTES: 8, CRC32C: 12 });
  assert.equal(MAX_RECORD_PAYLOAD_BYTES, 16 * 1024 * 1024);
  assert.equal(NAMESPACE_DATA_HEADER_BYTES, 24);
  assert.equal(CHANGED_LBA_RANGE_ENTRY_BYTES, 16);
  assert.equal(END_SUMMARY_BYTES, 16);
  assert.equal(maxNamespaceDataLbas(512), 32767);
  assert.equal(maxNamespaceDataLbas(4096), 4095);
  assert.equal(MAX_CHANGED_LBA_RANGES_PER_RECORD, 1048575);
});

test("format UUID round-trips through its 16 bytes; junk is refused", () => {
  const b = uuidToBytes(FORMAT_UUID)!;
  assert.equal(b.byteLength, 16);
  assert.equal(b[0], 0x6e);
  assert.equal(b[15], 0x01);
  assert.equal(uuidFromBytes(b), FORMAT_UUID);
  assert.equal(uuidToBytes("not-a-uuid"), undefined);
  assert.equal(uuidToBytes(`${FORMAT_UUID}0`), undefined);
});

test("stream header bytes sit at the documented offsets and its CRC covers them", () => {
  const w = new StreamWriter({ formatUuid: FORMAT_UUID, identity: "vf3", userData: true });
  const h = w.read(1000);
  assert.equal(h.byteLength, 36 + 3);
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  assert.deepEqual(h.subarray(0, 8), STREAM_MAGIC);
  assert.equal(v.getUint16(StreamHeaderOffset.VERSION, true), STREAM_VERSION);
  assert.equal(v.getUint16(StreamHeaderOffset.FLAGS, true), 1);
  assert.equal(uuidFromBytes(h.subarray(StreamHeaderOffset.FORMAT_UUID, 28)), FORMAT_UUID);
  assert.equal(v.getUint16(StreamHeaderOffset.IDENTITY_BYTES, true), 3);
  assert.equal(v.getUint16(StreamHeaderOffset.RESERVED, true), 0);
  assert.equal(new TextDecoder().decode(h.subarray(32, 35)), "vf3");
  assert.equal(v.getUint32(35, true), crc32c(h.subarray(0, 35)));
});

test("record layouts: header, NAMESPACE_DATA, CHANGED_LBA_RANGES, STOP_COPY_SIZE_HINT, END", () => {
  const w = new StreamWriter({ formatUuid: FORMAT_UUID, userData: true });
  const headerBytes = w.read(1000).byteLength;
  const data = pattern(1024, 1);
  w.writeNamespaceData({ nsid: 7, slba: 2 ** 40 + 5, nlb: 2, lbaBytes: 512 }, data);
  const r = w.read(1 << 20);
  const v = new DataView(r.buffer, r.byteOffset, r.byteLength);
  assert.equal(r.byteLength, 16 + 24 + 1024);
  assert.equal(v.getUint32(0, true), RecordTag.NAMESPACE_DATA);
  assert.equal(v.getUint32(4, true), 0);
  assert.equal(v.getUint32(8, true), 24 + 1024);
  const crc = crc32c(r.subarray(16), crc32c(r.subarray(0, 12)));
  assert.equal(v.getUint32(12, true), crc);
  assert.equal(v.getUint32(16, true), 7); // nsid
  assert.equal(v.getUint32(20, true), 2); // nlb (count)
  assert.equal(v.getUint32(24, true), 5); // slba low
  assert.equal(v.getUint32(28, true), 2 ** 8); // slba high
  assert.equal(v.getUint32(32, true), 512); // lbaBytes
  assert.equal(v.getUint32(36, true), 0); // reserved
  assert.deepEqual(r.subarray(40), data);

  w.writeChangedLbaRanges([{ nsid: 1, slba: 3, nlb: 9 }]);
  const c = w.read(1 << 20);
  const cv = new DataView(c.buffer, c.byteOffset, c.byteLength);
  assert.equal(c.byteLength, 16 + 8 + 16);
  assert.equal(cv.getUint32(0, true), RecordTag.CHANGED_LBA_RANGES);
  assert.equal(cv.getUint32(16, true), 1); // count
  assert.equal(cv.getUint32(24, true), 1); // nsid
  assert.equal(cv.getUint32(28, true), 9); // nlb
  assert.equal(cv.getUint32(32, true), 3); // slba low

  w.writeStopCopySizeHint(2 ** 33 + 1);
  const s = w.read(1 << 20);
  const sv = new DataView(s.buffer, s.byteOffset, s.byteLength);
  assert.equal(sv.getUint32(0, true), RecordTag.STOP_COPY_SIZE_HINT);
  assert.equal(sv.getUint32(4, true), 1); // OPTIONAL
  assert.equal(sv.getUint32(8, true), 8);
  assert.equal(sv.getUint32(16, true), 1);
  assert.equal(sv.getUint32(20, true), 2);

  w.end();
  const e = w.read(1 << 20);
  const ev = new DataView(e.buffer, e.byteOffset, e.byteLength);
  assert.equal(ev.getUint32(0, true), RecordTag.END);
  assert.equal(ev.getUint32(8, true), 16);
  assert.equal(ev.getUint32(16, true), 3); // records before END
  assert.equal(ev.getUint32(24, true), headerBytes + r.byteLength + c.byteLength + s.byteLength); // streamBytes
  assert.equal(ev.getUint32(28, true), 0);
});
