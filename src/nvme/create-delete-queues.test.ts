import assert from "node:assert/strict";
import { test } from "node:test";
import { checkDwordFields } from "./codec-test-helpers.ts";
import {
  decodeCreateIoCompletionQueue,
  decodeCreateIoSubmissionQueue,
  decodeDeleteIoQueue,
  encodeCreateIoCompletionQueue,
  encodeCreateIoSubmissionQueue,
  encodeDeleteIoQueue,
  Qprio,
} from "./create-delete-queues.ts";

test("Create I/O CQ: QID CDW10 15:0, QSIZE 31:16, PC CDW11 0, IEN 1, IV 31:16", () => {
  checkDwordFields({
    base: { qid: 0, qsize: 0, pc: false, ien: false, iv: 0 },
    encode: encodeCreateIoCompletionQueue,
    decode: decodeCreateIoCompletionQueue,
    fields: [
      ["qid", "cdw10", 0, 16],
      ["qsize", "cdw10", 16, 16],
      ["pc", "cdw11", 0, 1, "bool"],
      ["ien", "cdw11", 1, 1, "bool"],
      ["iv", "cdw11", 16, 16],
    ],
  });
});

test("Create I/O SQ: QID, QSIZE, PC CDW11 0, QPRIO 2:1, CQID 31:16, NVMSETID CDW12 15:0", () => {
  checkDwordFields({
    base: { qid: 0, qsize: 0, pc: false, qprio: 0, cqid: 0, nvmsetid: 0 },
    encode: encodeCreateIoSubmissionQueue,
    decode: decodeCreateIoSubmissionQueue,
    fields: [
      ["qid", "cdw10", 0, 16],
      ["qsize", "cdw10", 16, 16],
      ["pc", "cdw11", 0, 1, "bool"],
      ["qprio", "cdw11", 1, 2],
      ["cqid", "cdw11", 16, 16],
      ["nvmsetid", "cdw12", 0, 16],
    ],
  });
  assert.equal(Qprio.Low, 3);
  const c = encodeCreateIoSubmissionQueue({
    qid: 1,
    qsize: 1023,
    pc: true,
    qprio: Qprio.Medium,
    cqid: 1,
    nvmsetid: 0,
  });
  assert.equal(c.cdw10, 0x03ff0001);
  assert.equal(c.cdw11, 0x00010005);
});

test("Delete I/O SQ / CQ: QID CDW10 15:0", () => {
  checkDwordFields({
    base: { qid: 0 },
    encode: encodeDeleteIoQueue,
    decode: decodeDeleteIoQueue,
    fields: [["qid", "cdw10", 0, 16]],
  });
});
