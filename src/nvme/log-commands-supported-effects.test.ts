import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  COMMANDS_SUPPORTED_EFFECTS_BYTES,
  CommandSubmissionExecution,
  CSE_CCC,
  CSE_CSUPP,
  CSE_LBCC,
  CSE_NCC,
  CSE_NIC,
  decodeCommandEffects,
  decodeCommandsSupportedEffects,
  encodeCommandEffects,
  encodeCommandsSupportedEffects,
} from "./log-commands-supported-effects.ts";

test("Commands Supported and Effects: 4096 bytes, ACS[op] @4·op, IOCS[op] @1024 + 4·op", () => {
  assert.equal(COMMANDS_SUPPORTED_EFFECTS_BYTES, 4096);
  const acs: number[] = [];
  acs[0x06] = 0x11223344;
  acs[0xff] = 0x55667788;
  const iocs: number[] = [];
  iocs[0x01] = 0x0a0b0c0d;
  iocs[0xff] = 0xffffffff;
  const b = encodeCommandsSupportedEffects({
    acs: Array.from(acs, (x) => x ?? 0),
    iocs: Array.from(iocs, (x) => x ?? 0),
  });
  const expected = new Uint8Array(4096);
  expected.set([0x44, 0x33, 0x22, 0x11], 0x06 * 4);
  expected.set([0x88, 0x77, 0x66, 0x55], 0xff * 4);
  expected.set([0x0d, 0x0c, 0x0b, 0x0a], 1024 + 4);
  expected.set([0xff, 0xff, 0xff, 0xff], 1024 + 0xff * 4);
  assert.deepEqual(b, expected);
  const d = decodeCommandsSupportedEffects(b);
  assert.equal(d.acs.length, 256);
  assert.equal(d.acs[6], 0x11223344);
  assert.equal(d.iocs[255], 0xffffffff);
});

test("effects entry bits: CSUPP 0, LBCC 1, NCC 2, NIC 3, CCC 4, CSER 15:14, CSE 18:16, USS 19, CSP 31:20", () => {
  assert.deepEqual([CSE_CSUPP, CSE_LBCC, CSE_NCC, CSE_NIC, CSE_CCC], [1, 2, 4, 8, 16]);
  assert.equal(encodeCommandEffects({ csupp: true, lbcc: true }), 0x3);
  assert.equal(encodeCommandEffects({ cse: CommandSubmissionExecution.AnyNamespace }), 2 << 16);
  assert.equal(encodeCommandEffects({ cse: 7 }), 0x70000);
  assert.equal(encodeCommandEffects({ cser: 3 }), 0xc000);
  assert.equal(encodeCommandEffects({ uss: true }), 1 << 19);
  assert.equal(encodeCommandEffects({ csp: 0xfff }), 0xfff00000);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffffffff }), (dw) => {
      const reserved = 0x3fe0; // bits 13:5
      assert.equal(encodeCommandEffects(decodeCommandEffects(dw)), (dw & ~reserved) >>> 0);
    }),
  );
});
