import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  activeNamespaceIdList,
  decodeNamespaceList,
  encodeNamespaceList,
  NAMESPACE_LIST_BYTES,
  NAMESPACE_LIST_MAX,
} from "./namespace-list.ts";

test("namespace list: 4096 bytes of u32 NSIDs, zero terminated", () => {
  assert.equal(NAMESPACE_LIST_BYTES, 4096);
  assert.equal(NAMESPACE_LIST_MAX, 1024);
  const b = encodeNamespaceList([1, 2, 0x12345678]);
  assert.equal(b.byteLength, 4096);
  assert.deepEqual([...b.subarray(0, 16)], [1, 0, 0, 0, 2, 0, 0, 0, 0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0]);
  assert.ok(b.subarray(12).every((x) => x === 0));
  assert.deepEqual(decodeNamespaceList(b), [1, 2, 0x12345678]);
  const full = Array.from({ length: 1024 }, (_, i) => i + 1);
  assert.deepEqual(decodeNamespaceList(encodeNamespaceList(full)), full);
  assert.throws(() => encodeNamespaceList([...full, 1025]), RangeError);
});

test("active namespace ID list: NSIDs greater than the command's, sorted, at most 1024", () => {
  assert.deepEqual(activeNamespaceIdList([5, 1, 3], 0), [1, 3, 5]);
  assert.deepEqual(activeNamespaceIdList([5, 1, 3], 3), [5]);
  assert.equal(
    activeNamespaceIdList(
      Array.from({ length: 2000 }, (_, i) => i + 1),
      0,
    ).length,
    1024,
  );
});

test("namespace list round-trips (property)", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 0xffffffff }), { maxLength: 1024 }), (nsids) => {
      assert.deepEqual(decodeNamespaceList(encodeNamespaceList(nsids)), nsids);
    }),
    { numRuns: 50 },
  );
});
