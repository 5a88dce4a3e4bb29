/**
 * TP4159 end to end at the register level: a controlling function (PF) suspends a controlled function
 * (VF) by CNTLID, reads its Controller State with Migration Receive, a second subsystem's PF writes it
 * into its VF with Set Controller State and resumes it, and the guest's queues carry on there —
 * including an SQE that was submitted but not fetched before the suspend.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../../host/subsystem-host.ts";
import { decodeControllerState } from "../../nvme/controller-state.ts";
import {
  encodeMigrationReceive,
  encodeMigrationSend,
  SequenceIndicator,
} from "../../nvme/migration-commands.ts";
import { Status, statusName } from "../../nvme/status.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { TestHost } from "../test-support.ts";

const SRIOV = 0x100;

async function makeSide(store = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 1 << 16 })) {
  const host = new SubsystemHost({ namespaces: [{ nsid: 1, store }], secondaryCount: 4 });
  const pf = new TestHost({ subsystem: host.subsystem, controller: host.pf.controller });
  pf.enable();
  // Enable 2 VFs in the PF's SR-IOV capability, give VF1 resources, bring it online.
  host.pf.configWrite(SRIOV + 0x10, 2, 2); // NumVFs
  host.pf.configWrite(SRIOV + 0x08, 2, 1 | (1 << 3)); // VF Enable | VF MSE
  assert.equal(host.vfs.size, 2);
  const a = await pf.admin({ opc: 0x1c, cdw10: 8 | (0 << 8) | (1 << 16), cdw11: 5 }); // assign 5 VQ
  assert.equal(a.status, 0, statusName(a.status));
  const b = await pf.admin({ opc: 0x1c, cdw10: 8 | (1 << 8) | (1 << 16), cdw11: 5 }); // assign 5 VI
  assert.equal(b.status, 0, statusName(b.status));
  const on = await pf.admin({ opc: 0x1c, cdw10: 9 | (1 << 16) });
  assert.equal(on.status, 0, statusName(on.status));
  return { host, pf, vf1: host.vfs.get(1)! };
}

/** PRP1/PRP2 for a page-aligned buffer of `len` bytes, building a PRP list in `h`'s memory if needed. */
function prps(h: TestHost, addr: number, len: number): { prp1: number; prp2: number } {
  if (len <= 4096) return { prp1: addr, prp2: 0 };
  if (len <= 8192) return { prp1: addr, prp2: addr + 4096 };
  const list = h.alloc(4096);
  for (let p = 1; p * 4096 < len; p++) h.view.setBigUint64(list + (p - 1) * 8, BigInt(addr + p * 4096), true);
  return { prp1: addr, prp2: list };
}

function send(f: Parameters<typeof encodeMigrationSend>[0]) {
  return { opc: 0x41, ...encodeMigrationSend(f) };
}

test("suspend, get state, set state on another subsystem, resume: queues continue, unfetched SQE runs there", async () => {
  const store = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 1 << 16 });
  const src = await makeSide(store);
  const dst = await makeSide(store); // shared storage: both hosts see the same namespace
  const guest = new TestHost({ subsystem: src.host.subsystem, controller: src.vf1.controller });
  guest.enable();
  await guest.createIoQueuePair(1, 16, 1);
  const buf = guest.alloc(4096);
  guest.ram.fill(0xab, buf, buf + 512);
  const w = await guest.command(1, { opc: 0x01, nsid: 1, prp1: buf, cdw10: 7, cdw12: 0 });
  assert.equal(w.status, 0);

  // Suspend VF1 (CNTLID 1) from the source PF.
  const s = await src.pf.admin(send({ sel: 0, cntlid: 1, stype: 1, dudmq: false, uidx: 0 }));
  assert.equal(s.status, 0, statusName(s.status));
  assert.equal(src.vf1.controller.suspended, true);
  // Suspend again → Controller Suspended.
  const again = await src.pf.admin(send({ sel: 0, cntlid: 1, stype: 1, dudmq: false, uidx: 0 }));
  assert.equal(again.status, Status.ControllerSuspended);

  // The guest submits a read while suspended: it is not fetched.
  const rbuf = guest.alloc(4096);
  const pendingCid = guest.submit(1, { opc: 0x02, nsid: 1, prp1: rbuf, cdw10: 7, cdw12: 0 });
  guest.pass();
  assert.equal(guest.reap(1).length, 0);

  // Get Controller State, in two chunks.
  const out = src.pf.alloc(16384);
  const first = await src.pf.admin({
    opc: 0x42,
    prp1: out,
    ...encodeMigrationReceive({
      sel: 0,
      csvi: 1,
      cntlid: 1,
      csuuidi: 1,
      csuidxp: 0,
      offset: 0,
      uidx: 0,
      numd: 1023,
    }),
  });
  assert.equal(first.status, 0, statusName(first.status));
  assert.equal(first.dw0 & 1, 1, "CSUP");
  const header = decodeControllerState(src.pf.ram.subarray(out, out + 48));
  assert.equal(header.ok, false, "only the header: a truncated blob");
  const total =
    48 +
    4 *
      Number(
        new DataView(src.pf.ram.buffer).getBigUint64(out + 16, true) +
          new DataView(src.pf.ram.buffer).getBigUint64(out + 32, true),
      );
  assert.ok(total < 16384);
  if (total > 4096) {
    const second = await src.pf.admin({
      opc: 0x42,
      prp1: out + 4096,
      prp2: out + 8192,
      ...encodeMigrationReceive({
        sel: 0,
        csvi: 1,
        cntlid: 1,
        csuuidi: 1,
        csuidxp: 0,
        offset: 4096,
        uidx: 0,
        numd: 2047,
      }),
    });
    assert.equal(second.status, 0);
  }
  const blob = src.pf.ram.slice(out, out + total);
  const decoded = decodeControllerState(blob);
  assert.ok(decoded.ok);
  assert.equal(decoded.value.nvme?.sqs.length, 1);
  assert.equal(decoded.value.nvme?.sqs[0]?.iosqtp, 2, "tail includes the unfetched SQE");
  assert.equal(decoded.value.nvme?.sqs[0]?.iosqhp, 1);

  // Destination: Set Controller State on a running VF → Controller Not Suspended.
  const inBuf = dst.pf.alloc(blob.byteLength);
  dst.pf.ram.set(blob, inBuf);
  const notSusp = await dst.pf.admin({
    ...send({
      sel: 2,
      seqind: SequenceIndicator.Entire,
      cntlid: 1,
      csvi: 1,
      csuuidi: 1,
      offset: 0,
      uidx: 0,
      numd: blob.byteLength / 4,
    }),
    ...prps(dst.pf, inBuf, blob.byteLength),
  });
  assert.equal(notSusp.status, Status.ControllerNotSuspended);
  assert.equal((await dst.pf.admin(send({ sel: 0, cntlid: 1, stype: 1, dudmq: false, uidx: 0 }))).status, 0);

  // Guest memory moves (here: the same RAM is mapped on the destination VF).
  guest.retarget(dst.vf1.controller);

  // A corrupted state is refused and changes nothing.
  dst.pf.ram[inBuf + 60] = dst.pf.ram[inBuf + 60]! ^ 0xff;
  const bad = await dst.pf.admin({
    ...send({
      sel: 2,
      seqind: SequenceIndicator.Entire,
      cntlid: 1,
      csvi: 1,
      csuuidi: 1,
      offset: 0,
      uidx: 0,
      numd: blob.byteLength / 4,
    }),
    ...prps(dst.pf, inBuf, blob.byteLength),
  });
  assert.equal(bad.status, Status.InvalidField);
  assert.equal(dst.vf1.controller.ioQueueCounts().sqs, 0);
  dst.pf.ram[inBuf + 60] = dst.pf.ram[inBuf + 60]! ^ 0xff;

  const set = await dst.pf.admin({
    ...send({
      sel: 2,
      seqind: SequenceIndicator.Entire,
      cntlid: 1,
      csvi: 1,
      csuuidi: 1,
      offset: 0,
      uidx: 0,
      numd: blob.byteLength / 4,
    }),
    ...prps(dst.pf, inBuf, blob.byteLength),
  });
  assert.equal(set.status, 0, statusName(set.status));
  const r = await dst.pf.admin(send({ sel: 1, cntlid: 1, uidx: 0 }));
  assert.equal(r.status, 0);

  // The pending read was fetched on the destination and completed into the migrated CQ.
  await new Promise((res) => setImmediate(res));
  guest.pass();
  const done = guest.reap(1);
  assert.equal(done.length, 1);
  assert.equal(done[0]!.cid, pendingCid);
  assert.equal(done[0]!.status, 0);
  assert.equal(guest.ram[rbuf], 0xab);
  // And new I/O works on the destination.
  const w2 = await guest.command(1, { opc: 0x01, nsid: 1, prp1: buf, cdw10: 8, cdw12: 0 });
  assert.equal(w2.status, 0);
});

test("targets: the PF's own CNTLID and unknown CNTLIDs → Invalid Controller Identifier", async () => {
  const { pf } = await makeSide();
  for (const cntlid of [0, 9, 0xffff]) {
    const r = await pf.admin(send({ sel: 0, cntlid, stype: 1, dudmq: false, uidx: 0 }));
    assert.equal(r.status, Status.InvalidControllerIdentifier);
  }
  const resume = await pf.admin(send({ sel: 1, cntlid: 1, uidx: 0 }));
  assert.equal(resume.status, Status.ControllerNotSuspended);
});
