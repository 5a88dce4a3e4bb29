import assert from "node:assert/strict";
import { test } from "node:test";
import {
  CHANGED_NAMESPACE_LIST_BYTES,
  CHANGED_NAMESPACE_LIST_OVERFLOW,
  decodeChangedNamespaceList,
  encodeChangedNamespaceList,
} from "./log-changed-namespace-list.ts";

test("Changed Namespace List: 4096 bytes of u32 NSIDs; overflow is a single FFFFFFFFh", () => {
  assert.equal(CHANGED_NAMESPACE_LIST_BYTES, 4096);
  const b = encodeChangedNamespaceList([3, 0x01020304]);
  assert.deepEqual([...b.subarray(0, 12)], [3, 0, 0, 0, 4, 3, 2, 1, 0, 0, 0, 0]);
  assert.deepEqual(decodeChangedNamespaceList(b), [3, 0x01020304]);
  const all = Array.from({ length: 1024 }, (_, i) => i + 1);
  assert.deepEqual(decodeChangedNamespaceList(encodeChangedNamespaceList(all)), all);
  const over = encodeChangedNamespaceList([...all, 1025]);
  assert.deepEqual([...over.subarray(0, 8)], [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
  assert.ok(over.subarray(4).every((x) => x === 0));
  assert.deepEqual(decodeChangedNamespaceList(over), [CHANGED_NAMESPACE_LIST_OVERFLOW]);
});
