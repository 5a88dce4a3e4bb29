import assert from "node:assert/strict";
import { test } from "node:test";
import { checkDwordFields } from "./codec-test-helpers.ts";
import { encodeIdentifyController, makeIdentifyController } from "./identify-controller.ts";
import {
  decodeIntelMigration,
  decodeIntelQueryDataSizeDw0,
  encodeIntelMigration,
  encodeIntelQueryDataSizeDw0,
  INTEL_LM_MAX_STATE_BYTES,
  intelLiveMigrationSupported,
} from "./intel-migration.ts";

test("Intel profile: VF index CDW10 15:0, load size CDW11, query size in DW0", () => {
  checkDwordFields({
    base: { vfIndex: 0, sizeBytes: 0 },
    encode: encodeIntelMigration,
    decode: decodeIntelMigration,
    fields: [
      ["vfIndex", "cdw10", 0, 16],
      ["sizeBytes", "cdw11", 0, 32],
    ],
  });
  assert.deepEqual(encodeIntelMigration({ vfIndex: 1 }), {
    cdw10: 1,
    cdw11: 0,
    cdw12: 0,
    cdw13: 0,
    cdw14: 0,
    cdw15: 0,
  });
  assert.equal(decodeIntelQueryDataSizeDw0(encodeIntelQueryDataSizeDw0(45056)), 45056);
  assert.equal(INTEL_LM_MAX_STATE_BYTES, 262144);
});

test("capability: Identify Controller byte 3072 = 1", () => {
  const vs = new Uint8Array(1024);
  assert.equal(intelLiveMigrationSupported(vs), false);
  vs[0] = 1;
  assert.equal(intelLiveMigrationSupported(vs), true);
  assert.equal(encodeIdentifyController(makeIdentifyController({ vs }))[3072], 1);
  vs[0] = 2;
  assert.equal(intelLiveMigrationSupported(vs), false, "other values are reserved");
});
