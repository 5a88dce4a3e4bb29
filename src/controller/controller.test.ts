import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { test } from "node:test";
import { decodeIdentifyController } from "../nvme/identify-controller.ts";
import { CC, CSTS, Reg, sqTailDoorbell } from "../nvme/registers.ts";
import { Status, statusName } from "../nvme/status.ts";
import { controllerChannel } from "./events.ts";
import { TestHost } from "./test-support.ts";

test("register reset values: CAP, VS, CC, CSTS", () => {
  const h = new TestHost();
  const c = h.controller;
  const cap = c.read64(Reg.CAP);
  assert.equal(Number(cap & 0xffffn), 4095, "MQES");
  assert.equal(Number((cap >> 16n) & 1n), 1, "CQR");
  assert.equal(Number((cap >> 32n) & 0xfn), 0, "DSTRD");
  assert.equal(Number((cap >> 37n) & 1n), 1, "CSS NVM");
  assert.equal(c.read32(Reg.VS), 0x00020100);
  assert.equal(c.read32(Reg.CC), 0);
  assert.equal(c.read32(Reg.CSTS), 0);
});

test("CAP and VS are read-only", () => {
  const h = new TestHost();
  const c = h.controller;
  const before = c.read64(Reg.CAP);
  c.write32(Reg.CAP, 0);
  c.write32(Reg.VS, 0);
  assert.equal(c.read64(Reg.CAP), before);
  assert.equal(c.read32(Reg.VS), 0x00020100);
});

test("enable sets CSTS.RDY; disable clears it and deletes queues", async () => {
  const h = new TestHost();
  const csts = h.enable();
  assert.equal(csts & CSTS.RDY, CSTS.RDY);
  await h.createIoQueuePair(1);
  assert.equal(h.controller.ioQueueCounts().sqs, 1);
  h.controller.write32(Reg.CC, 0);
  assert.equal(h.controller.read32(Reg.CSTS) & CSTS.RDY, 0);
  assert.equal(h.controller.ioQueueCounts().sqs, 0);
});

test("enable with an unmapped admin queue is rejected (RDY stays 0)", () => {
  const h = new TestHost();
  const c = h.controller;
  c.write32(Reg.AQA, 0x001f001f);
  c.write64(Reg.ASQ, 0x7000_0000n);
  c.write64(Reg.ACQ, 0x7001_0000n);
  c.write32(Reg.CC, CC.make({ en: true }));
  assert.equal(c.read32(Reg.CSTS) & CSTS.RDY, 0);
});

test("shutdown notification completes", () => {
  const h = new TestHost();
  h.enable();
  h.controller.write32(Reg.CC, CC.make({ en: true, shn: 1 }));
  assert.equal((h.controller.read32(Reg.CSTS) >> 2) & 3, 2);
});

test("Identify Controller returns the subsystem identity and this CNTLID", async () => {
  const h = new TestHost();
  h.enable();
  const buf = h.alloc(4096);
  const cqe = await h.admin({ opc: 0x06, prp1: buf, cdw10: 1 });
  assert.equal(cqe.status, 0);
  const id = decodeIdentifyController(h.ram.subarray(buf, buf + 4096));
  assert.equal(id.cntlid, 0);
  assert.equal(id.sn, h.subsystem.identity.serial);
  assert.equal(id.sqes, 0x66);
  assert.equal(id.cqes, 0x44);
  assert.ok(id.oacs & (1 << 7), "VMS on the primary");
  assert.ok(id.oacs & (1 << 11), "HMLMS on the primary");
});

test("invalid admin opcode → Invalid Command Opcode with DNR, and a named event", async () => {
  const h = new TestHost();
  h.enable();
  const seen: unknown[] = [];
  const fn = (m: unknown) => seen.push(m);
  subscribe(controllerChannel.name, fn);
  const cqe = await h.admin({ opc: 0x7e });
  unsubscribe(controllerChannel.name, fn);
  assert.equal(cqe.status, Status.InvalidOpcode, statusName(cqe.status));
  assert.ok(seen.some((m) => (m as { event: string }).event === "command.invalid-opcode"));
  // the controller keeps serving
  const ok = await h.admin({ opc: 0x0a, cdw10: 0x07 });
  assert.equal(ok.status, 0);
});

test("write then read back through PRPs (multi-page, PRP list)", async () => {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1);
  const bytes = 64 * 512; // 8 pages → PRP list
  const wbuf = h.alloc(bytes);
  const rbuf = h.alloc(bytes);
  const list = h.alloc(4096);
  for (let i = 0; i < bytes; i++) h.ram[wbuf + i] = (i * 7) & 0xff;
  for (let p = 1; p < 8; p++) h.view.setBigUint64(list + (p - 1) * 8, BigInt(wbuf + p * 4096), true);
  const w = await h.command(1, { opc: 0x01, nsid: 1, prp1: wbuf, prp2: list, cdw10: 100, cdw12: 63 });
  assert.equal(w.status, 0, statusName(w.status));
  for (let p = 1; p < 8; p++) h.view.setBigUint64(list + (p - 1) * 8, BigInt(rbuf + p * 4096), true);
  const r = await h.command(1, { opc: 0x02, nsid: 1, prp1: rbuf, prp2: list, cdw10: 100, cdw12: 63 });
  assert.equal(r.status, 0, statusName(r.status));
  assert.deepEqual(h.ram.subarray(rbuf, rbuf + bytes), h.ram.subarray(wbuf, wbuf + bytes));
});

test("I/O errors: LBA out of range, bad namespace, bad PRP offset, MDTS", async () => {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1);
  const buf = h.alloc(8192);
  const lbaCount = h.subsystem.namespaces.get(1)!.lbaCount;
  const oor = await h.command(1, { opc: 0x02, nsid: 1, prp1: buf, cdw10: lbaCount - 1, cdw12: 1 });
  assert.equal(oor.status, Status.LbaOutOfRange);
  const badNs = await h.command(1, { opc: 0x02, nsid: 9, prp1: buf, cdw10: 0, cdw12: 0 });
  assert.equal(badNs.status, Status.InvalidNamespace);
  const badPrp = await h.command(1, { opc: 0x02, nsid: 1, prp1: buf + 2, cdw10: 0, cdw12: 0 });
  assert.equal(badPrp.status, Status.PrpOffsetInvalid);
  const badPrp2 = await h.command(1, {
    opc: 0x02,
    nsid: 1,
    prp1: buf,
    prp2: buf + 4096 + 512,
    cdw10: 0,
    cdw12: 15,
  });
  assert.equal(badPrp2.status, Status.PrpOffsetInvalid);
  const mdts = await h.command(1, { opc: 0x02, nsid: 1, prp1: buf, cdw10: 0, cdw12: 0xffff });
  assert.equal(mdts.status, Status.InvalidField);
  const unmapped = await h.command(1, { opc: 0x02, nsid: 1, prp1: 0x4000_0000, cdw10: 0, cdw12: 0 });
  assert.equal(unmapped.status, Status.DataTransferError);
});

test("queue creation errors: bad qid, size over MQES, unknown CQ, vector out of range, delete CQ in use", async () => {
  const h = new TestHost();
  h.enable();
  const mem = h.alloc(64 * 64);
  const e = async (f: Parameters<TestHost["admin"]>[0]) => (await h.admin(f)).status;
  assert.equal(
    await e({ opc: 0x05, prp1: mem, cdw10: 0 | (15 << 16), cdw11: 3 }),
    Status.InvalidQueueIdentifier,
  );
  assert.equal(
    await e({ opc: 0x05, prp1: mem, cdw10: 1 | (0xffff << 16), cdw11: 3 }),
    Status.InvalidQueueSize,
  );
  assert.equal(
    await e({ opc: 0x05, prp1: mem, cdw10: 1 | (15 << 16), cdw11: 3 | (99 << 16) }),
    Status.InvalidInterruptVector,
  );
  assert.equal(
    await e({ opc: 0x05, prp1: mem, cdw10: 1 | (15 << 16), cdw11: 2 }),
    Status.InvalidField,
    "PC=0",
  );
  assert.equal(
    await e({ opc: 0x01, prp1: mem, cdw10: 1 | (15 << 16), cdw11: 1 | (5 << 16) }),
    Status.CompletionQueueInvalid,
  );
  assert.equal(await e({ opc: 0x05, prp1: mem, cdw10: 1 | (15 << 16), cdw11: 3 | (1 << 16) }), 0);
  assert.equal(await e({ opc: 0x01, prp1: mem + 4096, cdw10: 1 | (15 << 16), cdw11: 1 | (1 << 16) }), 0);
  assert.equal(await e({ opc: 0x04, cdw10: 1 }), Status.InvalidQueueDeletion);
  assert.equal(await e({ opc: 0x00, cdw10: 1 }), 0);
  assert.equal(await e({ opc: 0x04, cdw10: 1 }), 0);
  assert.equal(await e({ opc: 0x00, cdw10: 1 }), Status.InvalidQueueIdentifier);
});

test("an invalid doorbell value is ignored and reported through an Asynchronous Event", async () => {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1, 16);
  const aerCid = h.submit(0, { opc: 0x0c });
  h.pass();
  h.controller.write32(sqTailDoorbell(1, 0), 999);
  h.pass();
  await new Promise((r) => setImmediate(r));
  const got = h.reap(0).find((x) => x.cid === aerCid);
  assert.ok(got, "AER completed");
  assert.equal(got.dw0 & 7, 0, "error status event");
  assert.equal((got.dw0 >> 8) & 0xff, 1, "invalid doorbell write value");
  // queue 1 still works
  const buf = h.alloc(4096);
  const r = await h.command(1, { opc: 0x02, nsid: 1, prp1: buf, cdw10: 0, cdw12: 0 });
  assert.equal(r.status, 0);
});

test("features: Number of Queues allocation, and Command Sequence Error after queues exist", async () => {
  const h = new TestHost();
  h.enable();
  const set = await h.admin({ opc: 0x09, cdw10: 0x07, cdw11: 3 | (3 << 16) });
  assert.equal(set.status, 0);
  assert.equal(set.dw0, 3 | (3 << 16));
  await h.createIoQueuePair(1);
  const again = await h.admin({ opc: 0x09, cdw10: 0x07, cdw11: 1 | (1 << 16) });
  assert.equal(again.status, Status.CommandSequenceError);
  const saved = await h.admin({ opc: 0x09, cdw10: 0x06 | (1 << 31), cdw11: 1 });
  assert.equal(saved.status, Status.FeatureNotSaveable);
  const unknown = await h.admin({ opc: 0x0a, cdw10: 0x7f });
  assert.equal(unknown.status, Status.InvalidField);
});

test("MSI-X: one interrupt per completion queue per pass, on its vector", async () => {
  const h = new TestHost();
  h.enable();
  await h.createIoQueuePair(1, 64, 3);
  h.interrupts.length = 0;
  const buf = h.alloc(4096);
  for (let i = 0; i < 4; i++) h.submit(1, { opc: 0x02, nsid: 1, prp1: buf, cdw10: i, cdw12: 0 });
  h.pass();
  assert.deepEqual(h.interrupts, [3]);
  assert.equal(h.reap(1).length, 4);
});
