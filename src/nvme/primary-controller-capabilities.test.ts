import assert from "node:assert/strict";
import { test } from "node:test";
import { type ByteField, checkStructFields } from "./codec-test-helpers.ts";
import {
  CRT_VI,
  CRT_VQ,
  decodePrimaryControllerCapabilities,
  encodePrimaryControllerCapabilities,
  PRIMARY_CONTROLLER_CAPABILITIES_BYTES,
} from "./primary-controller-capabilities.ts";

// NVMe Base 2.1 Figure "Primary Controller Capabilities Structure".
const FIELDS: readonly ByteField[] = [
  ["cntlid", 0, "u16"],
  ["portid", 2, "u16"],
  ["crt", 4, "u8"],
  ["vqfrt", 32, "u32"],
  ["vqrfa", 36, "u32"],
  ["vqrfap", 40, "u16"],
  ["vqprt", 42, "u16"],
  ["vqfrsm", 44, "u16"],
  ["vqgran", 46, "u16"],
  ["vifrt", 64, "u32"],
  ["virfa", 68, "u32"],
  ["virfap", 72, "u16"],
  ["viprt", 74, "u16"],
  ["vifrsm", 76, "u16"],
  ["vigran", 78, "u16"],
];

test("Primary Controller Capabilities is 4096 bytes and every field sits at its spec offset", () => {
  assert.equal(PRIMARY_CONTROLLER_CAPABILITIES_BYTES, 4096);
  assert.deepEqual([CRT_VQ, CRT_VI], [1, 2]);
  checkStructFields({
    size: 4096,
    make: () => decodePrimaryControllerCapabilities(new Uint8Array(4096)),
    encode: (v) => encodePrimaryControllerCapabilities(v),
    decode: decodePrimaryControllerCapabilities,
    fields: FIELDS,
  });
});
