import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { checkDwordFields } from "./codec-test-helpers.ts";
import {
  decodeGetLogPage,
  encodeGetLogPage,
  type GetLogPageFields,
  getLogPageBytes,
  getLogPageNumd,
} from "./get-log-page.ts";

const base: GetLogPageFields = {
  lid: 0,
  lsp: 0,
  rae: false,
  numd: 0,
  lsi: 0,
  lpo: 0,
  uuidIndex: 0,
  ot: false,
  csi: 0,
};

test("Get Log Page CDW10–14 field positions", () => {
  checkDwordFields({
    base,
    encode: encodeGetLogPage,
    decode: decodeGetLogPage,
    fields: [
      ["lid", "cdw10", 0, 8],
      ["lsp", "cdw10", 8, 7],
      ["rae", "cdw10", 15, 1, "bool"],
      ["lsi", "cdw11", 16, 16],
      ["uuidIndex", "cdw14", 0, 7],
      ["ot", "cdw14", 23, 1, "bool"],
      ["csi", "cdw14", 24, 8],
    ],
    except: ["numd", "lpo"],
  });
});

test("NUMD splits into NUMDL (CDW10 31:16) and NUMDU (CDW11 15:0); LPO into CDW12/13", () => {
  const c = encodeGetLogPage({ ...base, numd: 0x12345678, lpo: 0x0000_0abc_1234_5678 });
  assert.equal(c.cdw10, 0x56780000);
  assert.equal(c.cdw11, 0x1234);
  assert.equal(c.cdw12, 0x12345678);
  assert.equal(c.cdw13, 0x0abc);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      (numd, lpo) => {
        const v = { ...base, numd, lpo };
        assert.deepEqual(decodeGetLogPage(encodeGetLogPage(v)), v);
      },
    ),
  );
  assert.equal(getLogPageBytes(127), 512);
  assert.equal(getLogPageNumd(512), 127);
  assert.throws(() => getLogPageNumd(6), RangeError);
});
