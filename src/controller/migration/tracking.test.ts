/**
 * TP4159 tracking: Controller Data Queue + Track Send "Log User Data Changes" (32-byte UDMQ entries
 * with phase, ESA, LBACIR) and nvmig's Track Memory Changes / Track Receive.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../../host/subsystem-host.ts";
import {
  decodeUserDataMigrationQueueEntry,
  Esa,
  encodeControllerDataQueue,
  Lbacir,
} from "../../nvme/controller-data-queue.ts";
import { encodeSetControllerDataQueue } from "../../nvme/features.ts";
import { encodeMigrationSend } from "../../nvme/migration-commands.ts";
import { Status, statusName } from "../../nvme/status.ts";
import { encodeTrackMemoryRanges, encodeTrackReceive, encodeTrackSend } from "../../nvme/track-commands.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { TestHost } from "../test-support.ts";

async function setup() {
  const host = new SubsystemHost({
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount: 1 << 16 }) }],
    secondaryCount: 2,
  });
  const pf = new TestHost({ subsystem: host.subsystem, controller: host.pf.controller });
  pf.enable();
  host.pf.configWrite(0x110, 2, 1);
  host.pf.configWrite(0x108, 2, 1 | 8);
  for (const cdw10 of [8 | (1 << 16), 8 | (1 << 8) | (1 << 16)])
    assert.equal((await pf.admin({ opc: 0x1c, cdw10, cdw11: 3 })).status, 0);
  assert.equal((await pf.admin({ opc: 0x1c, cdw10: 9 | (1 << 16) })).status, 0);
  const guest = new TestHost({ subsystem: host.subsystem, controller: host.vfs.get(1)!.controller });
  guest.enable();
  await guest.createIoQueuePair(1, 32, 1);
  return { host, pf, guest };
}

function entries(h: TestHost, base: number, n: number) {
  return Array.from({ length: n }, (_, i) =>
    decodeUserDataMigrationQueueEntry(h.ram.subarray(base + i * 32, base + i * 32 + 32)),
  );
}

test("UDMQ: logging posts first / range / stopped / suspended entries with phase tags", async () => {
  const { pf, guest } = await setup();
  const q = pf.alloc(4096);
  const created = await pf.admin({
    opc: 0x45,
    prp1: q,
    ...encodeControllerDataQueue({ sel: 0, qt: 0, pc: true, cqs: 1, cdqsize: 8 * 8 }),
  });
  assert.equal(created.status, 0, statusName(created.status));
  const cdqid = created.dw0 & 0xffff;
  assert.equal((await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 1, cdqid }) })).status, 0);
  const buf = guest.alloc(4096);
  assert.equal((await guest.command(1, { opc: 0x01, nsid: 1, prp1: buf, cdw10: 10, cdw12: 3 })).status, 0);
  assert.equal((await guest.command(1, { opc: 0x08, nsid: 1, cdw10: 100, cdw12: 7 | (1 << 25) })).status, 0);
  assert.equal((await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 0, cdqid }) })).status, 0);
  const e = entries(pf, q, 4);
  assert.deepEqual(
    e.slice(0, 3).map((x) => [x.phase, x.esa, x.lbacir, x.nsid, x.slba, x.nlb, x.dlba]),
    [
      [1, Esa.First, Lbacir.RangeValid, 1, 10, 3, false],
      [1, Esa.None, Lbacir.RangeValid, 1, 100, 7, true],
      [1, Esa.LastLoggingStopped, Lbacir.NoRange, 0, 0, 0, false],
    ],
  );
  assert.equal(e[3]!.phase, 0, "unwritten slot");
  // Restart, then Suspend with DUDMQ posts ESA 3 and deletes the queue.
  assert.equal(
    (await pf.admin({ opc: 0x09, ...encodeSetControllerDataQueue({ cdqid, etpt: false, hp: 3, tpt: 0 }) }))
      .status,
    0,
  );
  assert.equal((await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 1, cdqid }) })).status, 0);
  assert.equal((await guest.command(1, { opc: 0x01, nsid: 1, prp1: buf, cdw10: 20, cdw12: 0 })).status, 0);
  const s = await pf.admin({
    opc: 0x41,
    ...encodeMigrationSend({ sel: 0, cntlid: 1, stype: 1, dudmq: true, uidx: 0 }),
  });
  assert.equal(s.status, 0);
  const after = entries(pf, q, 5);
  assert.equal(after[3]!.esa, Esa.First);
  assert.equal(after[3]!.slba, 20);
  assert.equal(after[4]!.esa, Esa.LastControllerSuspended);
  const gone = await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 1, cdqid }) });
  assert.equal(gone.status, Status.InvalidControllerDataQueue);
});

test("UDMQ: a full queue ends with ESA 7 / LBACIR 1 (treat everything as changed)", async () => {
  const { pf, guest } = await setup();
  const q = pf.alloc(4096);
  const cdqid = (
    await pf.admin({
      opc: 0x45,
      prp1: q,
      ...encodeControllerDataQueue({ sel: 0, qt: 0, pc: true, cqs: 1, cdqsize: 4 * 8 }),
    })
  ).dw0;
  await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 1, cdqid }) });
  const buf = guest.alloc(4096);
  for (let i = 0; i < 6; i++) await guest.command(1, { opc: 0x01, nsid: 1, prp1: buf, cdw10: i, cdw12: 0 });
  const e = entries(pf, q, 4);
  assert.deepEqual(
    e.slice(0, 3).map((x) => x.esa),
    [Esa.First, Esa.None, Esa.LastQueueFull],
  );
  assert.equal(e[2]!.lbacir, Lbacir.AllChanged);
  assert.equal(e[3]!.phase, 0, "one slot stays free");
});

test("Controller Data Queue errors", async () => {
  const { pf } = await setup();
  const q = pf.alloc(4096);
  const st = async (f: Parameters<typeof encodeControllerDataQueue>[0]) =>
    (await pf.admin({ opc: 0x45, prp1: q, ...encodeControllerDataQueue(f) })).status;
  assert.equal(await st({ sel: 0, qt: 1, pc: true, cqs: 1, cdqsize: 64 }), Status.InvalidField, "queue type");
  assert.equal(
    await st({ sel: 0, qt: 0, pc: true, cqs: 0, cdqsize: 64 }),
    Status.InvalidControllerIdentifier,
    "own CNTLID",
  );
  assert.equal(await st({ sel: 0, qt: 0, pc: true, cqs: 1, cdqsize: 12 }), Status.InvalidField, "size");
  assert.equal(await st({ sel: 0, qt: 0, pc: true, cqs: 1, cdqsize: 64 }), 0);
  assert.equal(
    await st({ sel: 0, qt: 0, pc: true, cqs: 1, cdqsize: 64 }),
    Status.NotEnoughResources,
    "one per controller",
  );
  assert.equal(await st({ sel: 1, cdqid: 77 }), Status.InvalidControllerDataQueue);
});

test("Track Memory Changes: device writes into guest memory are reported once (read-and-clear)", async () => {
  const { pf, guest } = await setup();
  const ranges = pf.alloc(4096);
  pf.ram.set(encodeTrackMemoryRanges([{ iova: 0, length: 16 << 20 }]), ranges);
  const start = await pf.admin({
    opc: 0x3d,
    prp1: ranges,
    ...encodeTrackSend({ sel: 1, tact: 1, cntlid: 1, rmrtg: 12, nranges: 1 }),
  });
  assert.equal(start.status, 0, statusName(start.status));
  const buf = guest.alloc(8192);
  assert.equal(
    (await guest.command(1, { opc: 0x02, nsid: 1, prp1: buf, prp2: buf + 4096, cdw10: 0, cdw12: 15 })).status,
    0,
  );
  const out = pf.alloc(4096);
  const numd = (16 << 20) / 4096 / 32 - 1; // whole bitmap
  const r = await pf.admin({
    opc: 0x3e,
    prp1: out,
    ...encodeTrackReceive({ sel: 0, cntlid: 1, ridx: 0, offset: 0, numd }),
  });
  assert.equal(r.status, 0, statusName(r.status));
  const bit = (page: number) => (pf.ram[out + (page >> 3)]! >> (page & 7)) & 1;
  assert.equal(bit(buf / 4096), 1, "first data page");
  assert.equal(bit(buf / 4096 + 1), 1, "second data page");
  const again = pf.alloc(4096);
  await pf.admin({
    opc: 0x3e,
    prp1: again,
    ...encodeTrackReceive({ sel: 0, cntlid: 1, ridx: 0, offset: 0, numd }),
  });
  assert.equal(
    (pf.ram[again + ((buf / 4096) >> 3)]! >> ((buf / 4096) & 7)) & 1,
    0,
    "cleared by the first read",
  );
  const badRange = await pf.admin({
    opc: 0x3e,
    prp1: out,
    ...encodeTrackReceive({ sel: 0, cntlid: 1, ridx: 3, offset: 0, numd: 0 }),
  });
  assert.equal(badRange.status, Status.InvalidField);
  assert.equal(
    (await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 1, tact: 0, cntlid: 1, rmrtg: 12, nranges: 0 }) }))
      .status,
    0,
  );
  const stopped = await pf.admin({
    opc: 0x3e,
    prp1: out,
    ...encodeTrackReceive({ sel: 0, cntlid: 1, ridx: 0, offset: 0, numd: 0 }),
  });
  assert.equal(stopped.status, Status.CommandSequenceError);
});
