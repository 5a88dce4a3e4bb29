/**
 * Fuzz properties for StreamParser (fast-check; Jazzer.js does not run here). The parser faces a peer's
 * bytes, so for any input it must: never throw, hold no more payload than its declared limits, and
 * never accept a stream that differs from what a writer produced.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { StreamParser } from "./reader.ts";
import { arbRecord, buildStream, concat, expectedRecords } from "./test-streams.ts";

const LIMITS = { maxRecordPayloadBytes: 8192, maxRetainedBytes: 32768 };
const HELD_LIMIT = LIMITS.maxRecordPayloadBytes + LIMITS.maxRetainedBytes;

type Mutation =
  | { kind: "flip"; at: number; xor: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "truncate"; at: number }
  | { kind: "duplicate"; at: number; length: number }
  | { kind: "u32"; at: number; value: number };

const position = fc.nat({ max: 0xffff });
const arbMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: position, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: position,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: position, length: fc.integer({ min: 1, max: 64 }) }),
  fc.record({ kind: fc.constant("truncate" as const), at: position }),
  fc.record({
    kind: fc.constant("duplicate" as const),
    at: position,
    length: fc.integer({ min: 1, max: 400 }),
  }),
  fc.record({
    kind: fc.constant("u32" as const),
    at: position,
    value: fc.constantFrom(0, 1, 2, 5, 16, 0x100, 0x10000, 0x1000000, 0x7fffffff, 0xffffffff),
  }),
);

function mutate(src: Uint8Array, m: Mutation): Uint8Array {
  const at = src.byteLength === 0 ? 0 : m.at % src.byteLength;
  switch (m.kind) {
    case "flip": {
      const out = src.slice();
      if (out.byteLength > 0) out[at] = out[at]! ^ m.xor;
      return out;
    }
    case "insert":
      return concat(src.subarray(0, at), m.bytes, src.subarray(at));
    case "delete":
      return concat(src.subarray(0, at), src.subarray(at + m.length));
    case "truncate":
      return src.slice(0, at);
    case "duplicate": {
      const piece = src.subarray(at, at + m.length);
      return concat(src.subarray(0, at), piece, src.subarray(at));
    }
    case "u32": {
      const out = src.slice();
      if (at + 4 <= out.byteLength) new DataView(out.buffer).setUint32(at, m.value, true);
      return out;
    }
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
}

/** Parses `bytes` in chunks; checks the held-bytes bound after every push; returns the verdict. */
function parseBounded(bytes: Uint8Array, sizes: readonly number[]) {
  const p = new StreamParser(LIMITS);
  let at = 0;
  for (let k = 0; at < bytes.byteLength; k++) {
    const size = sizes.length === 0 ? bytes.byteLength : sizes[k % sizes.length]!;
    p.push(bytes.subarray(at, at + size));
    assert.ok(p.bytesHeld() <= HELD_LIMIT, `held ${p.bytesHeld()} > ${HELD_LIMIT}`);
    at += size;
  }
  const result = p.finish();
  assert.ok(p.peakBytesHeld() <= HELD_LIMIT, `peak ${p.peakBytesHeld()} > ${HELD_LIMIT}`);
  return result;
}

const chunkSizes = fc.array(fc.integer({ min: 1, max: 512 }), { maxLength: 6 });

test("fuzz: mutated valid streams are refused (never thrown, never accepted), within the memory limit", () => {
  fc.assert(
    fc.property(
      fc.array(arbRecord(1), { maxLength: 4 }),
      fc.array(arbMutation, { minLength: 1, maxLength: 3 }),
      chunkSizes,
      (records, mutations, sizes) => {
        const original = buildStream(records);
        const bad = mutations.reduce(mutate, original);
        const result = parseBounded(bad, sizes);
        if (sameBytes(bad, original)) {
          assert.ok(result.ok);
          assert.deepEqual(result.records, expectedRecords(records));
        } else {
          assert.equal(result.ok, false, "a corrupted stream was accepted");
        }
      },
    ),
    { numRuns: 10_000 },
  );
});

test("fuzz: arbitrary bytes, bare or behind a valid header, are refused without throwing", () => {
  const header = buildStream([], { end: false });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), chunkSizes, (junk, withHeader, sizes) => {
      const bytes = withHeader ? concat(header, junk) : junk;
      const result = parseBounded(bytes, sizes);
      assert.equal(result.ok, false);
    }),
    { numRuns: 3_000 },
  );
});
