import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { crc32c } from "./crc32c.ts";
import { ControlError } from "./errors.ts";
import { MAX_CHUNK_BYTES } from "./limits.ts";
import { ControllerStateAssembler, type ControllerStateChunk, chunkControllerState } from "./state-chunks.ts";

function assembler(maxBytes = 1 << 20): ControllerStateAssembler {
  return new ControllerStateAssembler({ maxBytes, errorCode: "invalid-argument" });
}

test("chunk then assemble gives the same bytes for any size and chunk size", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 1, max: 700 }), (state, chunkBytes) => {
      const chunks = [...chunkControllerState(state, chunkBytes)];
      assert.equal(chunks.length, Math.max(1, Math.ceil(state.length / chunkBytes)));
      assert.ok(chunks.every((c) => c.data.length <= chunkBytes && c.totalBytes === BigInt(state.length)));
      assert.deepEqual(
        chunks.map((c) => c.last),
        chunks.map((_, i) => i === chunks.length - 1),
      );
      assert.equal(chunks.at(-1)?.crc32c, crc32c(state));
      const a = assembler();
      for (const c of chunks) a.push(c);
      assert.deepEqual(a.finish(), state);
    }),
    { numRuns: 200 },
  );
});

test("an empty state is one empty last chunk with CRC 0", () => {
  const chunks = [...chunkControllerState(new Uint8Array(0), 16)];
  assert.deepEqual(chunks, [
    { offsetBytes: 0n, data: new Uint8Array(0), totalBytes: 0n, last: true, crc32c: 0 },
  ]);
  const a = assembler();
  a.push(chunks[0]!);
  assert.equal(a.finish().length, 0);
});

test("chunkControllerState refuses chunk sizes outside 1..1 MiB", () => {
  assert.throws(() => [...chunkControllerState(new Uint8Array(4), 0)], RangeError);
  assert.throws(() => [...chunkControllerState(new Uint8Array(4), MAX_CHUNK_BYTES + 1)], RangeError);
});

/** Every malformed stream is refused with the configured code, naming the rule it broke. */
test("the assembler refuses gaps, overlaps, overruns, size changes, late chunks, bad CRC, oversize", () => {
  const state = Uint8Array.from({ length: 100 }, (_, i) => i);
  const good = [...chunkControllerState(state, 40)];
  const [c0, c1, c2] = good as [ControllerStateChunk, ControllerStateChunk, ControllerStateChunk];
  const cases: Array<[string, ControllerStateChunk[], RegExp]> = [
    ["gap", [c0, c2], /offset 80, expected 40/],
    ["overlap", [c0, { ...c1, offsetBytes: 30n }], /offset 30, expected 40/],
    ["overrun", [c0, c1, { ...c2, data: new Uint8Array(30) }], /beyond the total/],
    ["size change", [c0, { ...c1, totalBytes: 120n }], /total changed/],
    ["after last", [...good, c2], /after the last/],
    ["bad crc", [c0, c1, { ...c2, crc32c: (c2.crc32c ^ 1) >>> 0 }], /CRC-32C mismatch/],
    ["short last", [c0, { ...c1, last: true, crc32c: 0 }], /last chunk ends at 80/],
    ["oversize", [{ ...c0, totalBytes: 1_000_000n }], /exceeds the limit/],
    ["empty middle", [c0, { ...c1, data: new Uint8Array(0) }], /empty chunk/],
  ];
  for (const [name, chunks, re] of cases) {
    const a = new ControllerStateAssembler({ maxBytes: 1000, errorCode: "invalid-argument" });
    assert.throws(
      () => {
        for (const c of chunks) a.push(c);
      },
      (e: unknown) => ControlError.is(e, "invalid-argument") && re.test(e.message),
      name,
    );
  }
});

test("finish() without a last chunk fails with the configured code", () => {
  const a = new ControllerStateAssembler({ maxBytes: 1000, errorCode: "internal" });
  const [first] = chunkControllerState(new Uint8Array(50), 10);
  a.push(first!);
  assert.throws(
    () => a.finish(),
    (e: unknown) => ControlError.is(e, "internal") && /without a last/.test(e.message),
  );
});
