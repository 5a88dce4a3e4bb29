import assert from "node:assert/strict";
import { test } from "node:test";
import { checkDwordFields } from "./codec-test-helpers.ts";
import { Cns } from "./identifiers.ts";
import { decodeIdentify, encodeIdentify, IDENTIFY_DATA_BYTES } from "./identify-command.ts";

test("Identify: CNS CDW10 7:0, CNTID 31:16, CNSSID CDW11 15:0, CSI 31:24, UUID index CDW14 6:0", () => {
  assert.equal(IDENTIFY_DATA_BYTES, 4096);
  checkDwordFields({
    base: { cns: 0, cntid: 0, cnssid: 0, csi: 0, uuidIndex: 0 },
    encode: encodeIdentify,
    decode: decodeIdentify,
    fields: [
      ["cns", "cdw10", 0, 8],
      ["cntid", "cdw10", 16, 16],
      ["cnssid", "cdw11", 0, 16],
      ["csi", "cdw11", 24, 8],
      ["uuidIndex", "cdw14", 0, 7],
    ],
  });
  const c = encodeIdentify({ cns: Cns.SecondaryControllerList, cntid: 2, cnssid: 0, csi: 0, uuidIndex: 0 });
  assert.equal(c.cdw10, 0x00020015);
});
