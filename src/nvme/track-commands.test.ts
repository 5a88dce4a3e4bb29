import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { checkDwordFields } from "./codec-test-helpers.ts";
import {
  bitmapGet,
  bitmapSet,
  bitmapSetGranules,
  decodeTrackMemoryRanges,
  decodeTrackReceive,
  decodeTrackSend,
  encodeTrackMemoryRanges,
  encodeTrackReceive,
  encodeTrackSend,
  LoggingAction,
  TRACK_MEMORY_RANGE_BYTES,
  type TrackReceive,
  type TrackSend,
  TrackSendSel,
  trackBitmapBytes,
  trackGranules,
} from "./track-commands.ts";

function send(c: Parameters<typeof decodeTrackSend>[0]): TrackSend {
  const r = decodeTrackSend(c);
  assert.ok(r.ok);
  return r.value;
}
function recv(c: Parameters<typeof decodeTrackReceive>[0]): TrackReceive {
  const r = decodeTrackReceive(c);
  assert.ok(r.ok);
  return r.value;
}

test("Track Send SEL 0 Log User Data Changes: LACT = MOS[3:0] (CDW10 19:16), CDQID CDW11 15:0", () => {
  checkDwordFields<TrackSend>({
    base: { sel: TrackSendSel.LogUserDataChanges, lact: 0, cdqid: 0 },
    encode: encodeTrackSend,
    decode: send,
    fields: [
      ["lact", "cdw10", 16, 4],
      ["cdqid", "cdw11", 0, 16],
    ],
    except: ["sel"],
  });
  const c = encodeTrackSend({ sel: 0, lact: LoggingAction.StartLogging, cdqid: 3 });
  assert.equal(c.cdw10, 0x00010000);
  assert.equal(c.cdw11, 3);
});

test("Track Send SEL 1 Track Memory Changes (nvmig-defined): TACT, CNTLID, RMRTG CDW12 7:0, NRANGES CDW13", () => {
  checkDwordFields<TrackSend>({
    base: { sel: TrackSendSel.TrackMemoryChanges, tact: 0, cntlid: 0, rmrtg: 0, nranges: 0 },
    encode: encodeTrackSend,
    decode: send,
    fields: [
      ["tact", "cdw10", 16, 4],
      ["cntlid", "cdw11", 0, 16],
      ["rmrtg", "cdw12", 0, 8],
      ["nranges", "cdw13", 0, 32],
    ],
    except: ["sel"],
  });
  assert.equal(encodeTrackSend({ sel: 1, tact: 1, cntlid: 2, rmrtg: 12, nranges: 1 }).cdw10, 0x00010001);
  assert.equal(decodeTrackSend({ cdw10: 2 }).ok, false);
});

test("Track Receive SEL 0 Get Memory Changes (nvmig-defined): CNTLID, RIDX CDW12, OFFSET CDW13, NUMD CDW15", () => {
  checkDwordFields<TrackReceive>({
    base: { sel: 0, cntlid: 0, ridx: 0, offset: 0, numd: 0 },
    encode: encodeTrackReceive,
    decode: recv,
    fields: [
      ["cntlid", "cdw11", 0, 16],
      ["ridx", "cdw12", 0, 32],
      ["offset", "cdw13", 0, 32],
      ["numd", "cdw15", 0, 32],
    ],
    except: ["sel"],
  });
  assert.equal(decodeTrackReceive({ cdw10: 1 }).ok, false);
});

test("Track Memory Ranges: 16-byte {IOVA u64, LENGTH u64} entries", () => {
  assert.equal(TRACK_MEMORY_RANGE_BYTES, 16);
  const ranges = [
    { iova: 0x1_0000_0000, length: 0x20_0000 },
    { iova: 0x4000, length: 0x1000 },
  ];
  const b = encodeTrackMemoryRanges(ranges);
  assert.equal(b.byteLength, 32);
  assert.deepEqual([...b.subarray(0, 16)], [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0]);
  assert.deepEqual(decodeTrackMemoryRanges(b, 2), ranges);
  assert.deepEqual(decodeTrackMemoryRanges(b, 5), ranges, "count beyond the data is cut");
  assert.deepEqual(decodeTrackMemoryRanges(b.subarray(0, 20), 2), [ranges[0]]);
});

test("dirty bitmap: bit i = granule i, LSB first, whole dwords", () => {
  assert.equal(trackGranules(0x10000, 12), 16);
  assert.equal(trackGranules(0x10001, 12), 17);
  assert.equal(trackBitmapBytes(0x1000, 12), 4);
  assert.equal(trackBitmapBytes(33 * 0x1000, 12), 8);
  const bm = new Uint8Array(8);
  bitmapSet(bm, 0);
  bitmapSet(bm, 9);
  bitmapSet(bm, 63);
  bitmapSet(bm, 64); // outside: ignored
  assert.deepEqual([...bm], [0x01, 0x02, 0, 0, 0, 0, 0, 0x80]);
  assert.ok(bitmapGet(bm, 9));
  assert.ok(!bitmapGet(bm, 10));
  assert.deepEqual(bitmapSetGranules(bm), [0, 9, 63]);
  assert.deepEqual(bitmapSetGranules(bm, 100), [100, 109, 163]);
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 255 })), (set) => {
      const b = new Uint8Array(32);
      for (const g of set) bitmapSet(b, g);
      assert.deepEqual(
        bitmapSetGranules(b),
        [...set].sort((x, y) => x - y),
      );
    }),
  );
});
