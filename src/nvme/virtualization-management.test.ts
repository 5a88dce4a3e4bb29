import assert from "node:assert/strict";
import { test } from "node:test";
import { checkDwordFields } from "./codec-test-helpers.ts";
import { VirtMgmtAction, VirtMgmtResourceType } from "./identifiers.ts";
import {
  decodeVirtualizationManagement,
  encodeVirtualizationManagement,
} from "./virtualization-management.ts";

test("Virtualization Management: ACT CDW10 3:0, RT 10:8, CNTLID 31:16, NR CDW11 15:0", () => {
  checkDwordFields({
    base: { act: 0, rt: 0, cntlid: 0, nr: 0 },
    encode: encodeVirtualizationManagement,
    decode: decodeVirtualizationManagement,
    fields: [
      ["act", "cdw10", 0, 4],
      ["rt", "cdw10", 8, 3],
      ["cntlid", "cdw10", 16, 16],
      ["nr", "cdw11", 0, 16],
    ],
  });
  const c = encodeVirtualizationManagement({
    act: VirtMgmtAction.SecondaryControllerAssign,
    rt: VirtMgmtResourceType.ViResources,
    cntlid: 2,
    nr: 1,
  });
  assert.equal(c.cdw10, 0x00020108);
  assert.equal(c.cdw11, 1);
});
