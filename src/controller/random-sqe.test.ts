/**
 * Random SQEs never throw: arbitrary 64-byte commands on the admin queue and on an I/O queue complete
 * with some status (or are held, like AERs), the controller keeps serving, and a valid command still
 * succeeds afterwards (property test).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { TestHost } from "./test-support.ts";

test("random admin and I/O SQEs never throw and leave the controller serving", async () => {
  const h = new TestHost();
  h.enable(64);
  await h.createIoQueuePair(1, 64, 1);
  const buf = h.alloc(8192);
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      fc.boolean(),
      fc.constantFrom(0, buf),
      async (raw, admin, prp) => {
        const qid = admin ? 0 : 1;
        const sqe = new DataView(raw.buffer.slice(0));
        // Keep the opcode random but point data at mapped memory half of the time.
        if (prp !== 0) {
          sqe.setUint32(24, prp, true);
          sqe.setUint32(28, 0, true);
        }
        const fields = {
          opc: sqe.getUint8(0),
          fuse: sqe.getUint8(1) & 3,
          psdt: (sqe.getUint8(1) >> 6) & 3,
          nsid: sqe.getUint32(4, true),
          cdw2: sqe.getUint32(8, true),
          cdw3: sqe.getUint32(12, true),
          prp1: sqe.getUint32(24, true),
          prp2: sqe.getUint32(32, true),
          cdw10: sqe.getUint32(40, true),
          cdw11: sqe.getUint32(44, true),
          cdw12: sqe.getUint32(48, true),
          cdw13: sqe.getUint32(52, true),
          cdw14: sqe.getUint32(56, true),
          cdw15: sqe.getUint32(60, true),
        };
        // Commands that would tear the test's own queues down are not what this property is about.
        if (
          admin &&
          (fields.opc === 0x00 || fields.opc === 0x04 || fields.opc === 0x1c || fields.opc === 0x7c)
        )
          return;
        h.submit(qid, fields);
        assert.doesNotThrow(() => h.pass());
        await new Promise((r) => setImmediate(r));
        h.reap(qid);
      },
    ),
    { numRuns: 400 },
  );
  // Still serving: a valid Identify and a valid read.
  const id = await h.admin({ opc: 0x06, prp1: buf, cdw10: 1 });
  assert.equal(id.status, 0);
  const r = await h.command(1, { opc: 0x02, nsid: 1, prp1: buf, cdw10: 0, cdw12: 0 });
  assert.equal(r.status, 0);
});
