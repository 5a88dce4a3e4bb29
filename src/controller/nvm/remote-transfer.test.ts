import assert from "node:assert/strict";
import { test } from "node:test";
import type { RemoteDmaAccessor } from "../../memory/dma.ts";
import { NvmOpcode } from "../../nvme/opcodes.ts";
import { Status, statusName } from "../../nvme/status.ts";
import { SglType } from "../data-pointer.ts";
import { TestHost } from "../test-support.ts";

const REMOTE_IOVA = 0x4000_0000;
const REMOTE_BYTES = 1 << 20;
const LBA = 512;

/**
 * Remote guest memory for the tests: a buffer behind an accessor that records calls and can hold
 * transfers (until `release()`) or fail them.
 */
class FakeRemote implements RemoteDmaAccessor {
  readonly mem = new Uint8Array(REMOTE_BYTES);
  readonly calls: string[] = [];
  fail = false;
  hold = false;
  #held: (() => void)[] = [];

  read(iova: number, n: number): Promise<Uint8Array> {
    this.calls.push(`read ${(iova - REMOTE_IOVA).toString(16)}+${n.toString(16)}`);
    return this.#later(() => this.mem.slice(iova - REMOTE_IOVA, iova - REMOTE_IOVA + n));
  }

  write(iova: number, data: Uint8Array): Promise<void> {
    this.calls.push(`write ${(iova - REMOTE_IOVA).toString(16)}+${data.byteLength.toString(16)}`);
    const copy = data.slice();
    return this.#later(() => {
      this.mem.set(copy, iova - REMOTE_IOVA);
    });
  }

  release(): void {
    const h = this.#held;
    this.#held = [];
    for (const f of h) f();
  }

  #later<T>(f: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const go = () => (this.fail ? reject(new Error("peer failed")) : resolve(f()));
      if (this.hold) this.#held.push(go);
      else go();
    });
  }
}

async function rig(opts: { writable?: boolean } = {}) {
  const h = new TestHost();
  const remote = new FakeRemote();
  assert.ok(h.dma.mapRemote(REMOTE_IOVA, REMOTE_BYTES, remote, opts.writable ?? true));
  h.enable();
  await h.createIoQueuePair(1);
  const store = h.subsystem.namespaces.get(1)!.store;
  const stored = (slba: number, n: number) => {
    const b = new Uint8Array(n);
    store.read(slba * LBA, b);
    return b;
  };
  return { h, remote, stored };
}

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff);
}

function ok(status: number): void {
  assert.equal(status, Status.Success, statusName(status));
}

test("Write then Read through remote memory round-trip; contiguous PRP pages make one transfer", async () => {
  const { h, remote, stored } = await rig();
  const data = pattern(8192, 7);
  remote.mem.set(data, 0x3000);
  const w = await h.command(1, {
    opc: NvmOpcode.Write,
    nsid: 1,
    prp1: REMOTE_IOVA + 0x3000,
    prp2: REMOTE_IOVA + 0x4000,
    cdw10: 40,
    cdw12: 16 - 1,
  });
  ok(w.status);
  assert.deepEqual(stored(40, 8192), data);
  assert.deepEqual(remote.calls, ["read 3000+2000"]);

  const r = await h.command(1, {
    opc: NvmOpcode.Read,
    nsid: 1,
    prp1: REMOTE_IOVA + 0x10000,
    prp2: REMOTE_IOVA + 0x11000,
    cdw10: 40,
    cdw12: 16 - 1,
  });
  ok(r.status);
  assert.deepEqual(remote.mem.subarray(0x10000, 0x12000), data);
  assert.deepEqual(remote.calls, ["read 3000+2000", "write 10000+2000"]);
  const smart = h.controller.stats;
  assert.equal(smart.hostReadCommands, 1);
  assert.equal(smart.hostWriteCommands, 1);
});

test("a data pointer mixing direct and remote pages moves each part the right way (PRP and SGL)", async () => {
  const { h, remote, stored } = await rig();
  const direct = h.alloc(4096);
  const data = pattern(8192, 3);
  h.ram.set(data.subarray(0, 4096), direct);
  remote.mem.set(data.subarray(4096), 0x8000);
  ok(
    (
      await h.command(1, {
        opc: NvmOpcode.Write,
        nsid: 1,
        prp1: direct,
        prp2: REMOTE_IOVA + 0x8000,
        cdw10: 0,
        cdw12: 15,
      })
    ).status,
  );
  assert.deepEqual(stored(0, 8192), data);

  // SGL (PSDT 01b): one Last Segment descriptor in the SQE pointing at a list (in direct memory) of
  // two data blocks — remote first, then direct.
  const list = h.alloc(32);
  const v = h.view;
  const readBack = h.alloc(4096);
  v.setBigUint64(list, BigInt(REMOTE_IOVA + 0x20000), true);
  v.setUint32(list + 8, 4096, true);
  v.setUint8(list + 15, SglType.DataBlock << 4);
  v.setBigUint64(list + 16, BigInt(readBack), true);
  v.setUint32(list + 24, 4096, true);
  v.setUint8(list + 31, SglType.DataBlock << 4);
  const cid = h.submit(1, {
    opc: NvmOpcode.Read,
    psdt: 1,
    nsid: 1,
    prp1: list,
    prp2: 0,
    cdw10: 0,
    cdw12: 15,
  });
  // DPTR (patched before the pass runs): the Last Segment descriptor (address list, length 32).
  const sqe = findSqe(h, cid);
  v.setBigUint64(sqe + 24, BigInt(list), true);
  v.setUint32(sqe + 32, 32, true);
  v.setUint8(sqe + 39, SglType.LastSegment << 4);
  h.pass();
  const cqe = await reapOne(h, cid);
  ok(cqe.status);
  assert.deepEqual(remote.mem.subarray(0x20000, 0x21000), data.subarray(0, 4096));
  assert.deepEqual(h.ram.subarray(readBack, readBack + 4096), data.subarray(4096));
});

test("a Write is acknowledged only once its data is in the store; a Read only once the data landed", async () => {
  const { h, remote, stored } = await rig();
  remote.hold = true;
  const data = pattern(512, 9);
  remote.mem.set(data, 0);
  const before = stored(5, 512);
  const cid = h.submit(1, { opc: NvmOpcode.Write, nsid: 1, prp1: REMOTE_IOVA, cdw10: 5, cdw12: 0 });
  h.pass();
  await settle();
  assert.deepEqual(h.reap(1), [], "no completion while the transfer is outstanding");
  assert.deepEqual(stored(5, 512), before, "nothing in the store yet");
  assert.equal(h.controller.outstandingCommands(), 1, "Suspend would wait for it");
  remote.release();
  const w = await reapOne(h, cid);
  ok(w.status);
  assert.deepEqual(stored(5, 512), data);

  const log: [number, number][] = [];
  h.dma.attachLogger({ logWrite: (iova, n) => log.push([iova, n]) });
  const rcid = h.submit(1, { opc: NvmOpcode.Read, nsid: 1, prp1: REMOTE_IOVA + 0x40000, cdw10: 5, cdw12: 0 });
  h.pass();
  await settle();
  assert.deepEqual(h.reap(1), []);
  assert.ok(!log.some(([iova]) => iova === REMOTE_IOVA + 0x40000), "logged when the write settles");
  remote.release();
  ok((await reapOne(h, rcid)).status);
  assert.deepEqual(remote.mem.subarray(0x40000, 0x40200), data);
  assert.ok(
    log.some(([iova, n]) => iova === REMOTE_IOVA + 0x40000 && n === 512),
    "dirty-logged",
  );
});

test("a failing remote transfer ends the command with Data Transfer Error; a failed Write changes nothing", async () => {
  const { h, remote, stored } = await rig();
  remote.fail = true;
  const before = stored(100, 1024);
  const w = await h.command(1, {
    opc: NvmOpcode.Write,
    nsid: 1,
    prp1: REMOTE_IOVA,
    prp2: REMOTE_IOVA + 4096,
    cdw10: 100,
    cdw12: 1,
  });
  assert.equal(w.status, Status.DataTransferError, statusName(w.status));
  assert.deepEqual(stored(100, 1024), before);
  const r = await h.command(1, { opc: NvmOpcode.Read, nsid: 1, prp1: REMOTE_IOVA, cdw10: 100, cdw12: 1 });
  assert.equal(r.status, Status.DataTransferError);
  const c = await h.command(1, { opc: NvmOpcode.Compare, nsid: 1, prp1: REMOTE_IOVA, cdw10: 100, cdw12: 1 });
  assert.equal(c.status, Status.DataTransferError);
  assert.equal(h.controller.stats.hostWriteCommands, 0);
  // The queue keeps working.
  remote.fail = false;
  ok((await h.command(1, { opc: NvmOpcode.Read, nsid: 1, prp1: REMOTE_IOVA, cdw10: 100, cdw12: 1 })).status);
});

test("Compare with host data in remote memory: Success on equal data, Compare Failure otherwise", async () => {
  const { h, remote } = await rig();
  const data = pattern(1024, 1);
  remote.mem.set(data, 0x1000);
  ok(
    (await h.command(1, { opc: NvmOpcode.Write, nsid: 1, prp1: REMOTE_IOVA + 0x1000, cdw10: 8, cdw12: 1 }))
      .status,
  );
  ok(
    (await h.command(1, { opc: NvmOpcode.Compare, nsid: 1, prp1: REMOTE_IOVA + 0x1000, cdw10: 8, cdw12: 1 }))
      .status,
  );
  remote.mem[0x1000 + 700]! ^= 1;
  const c = await h.command(1, {
    opc: NvmOpcode.Compare,
    nsid: 1,
    prp1: REMOTE_IOVA + 0x1000,
    cdw10: 8,
    cdw12: 1,
  });
  assert.equal(c.status, Status.CompareFailure, statusName(c.status));
});

test("still refused: PRP lists in remote memory, Reads into a read-only remote range, unmapped memory", async () => {
  const { h, remote } = await rig({ writable: false });
  // 3 pages: PRP2 is a list pointer, and the list lies in remote memory.
  const w = await h.command(1, {
    opc: NvmOpcode.Write,
    nsid: 1,
    prp1: REMOTE_IOVA,
    prp2: REMOTE_IOVA + 0x8000,
    cdw10: 0,
    cdw12: 23,
  });
  assert.equal(w.status, Status.DataTransferError);
  const r = await h.command(1, { opc: NvmOpcode.Read, nsid: 1, prp1: REMOTE_IOVA, cdw10: 0, cdw12: 0 });
  assert.equal(r.status, Status.DataTransferError, "device writes need a writable range");
  const u = await h.command(1, { opc: NvmOpcode.Read, nsid: 1, prp1: 0x7000_0000, cdw10: 0, cdw12: 0 });
  assert.equal(u.status, Status.DataTransferError);
  assert.deepEqual(remote.calls, [], "nothing was sent");
  // A Write from the read-only range is fine (the device only reads it).
  ok((await h.command(1, { opc: NvmOpcode.Write, nsid: 1, prp1: REMOTE_IOVA, cdw10: 0, cdw12: 0 })).status);
});

/** Lets held promise chains run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

function findSqe(h: TestHost, cid: number): number {
  const sq = h.controller.sqs[1]!;
  for (let i = 0; i < sq.sizeEntries; i++) {
    const at = sq.baseIova + i * 64;
    if (h.view.getUint16(at + 2, true) === cid && h.view.getUint8(at) === NvmOpcode.Read) return at;
  }
  throw new Error(`no SQE with cid ${cid}`);
}

async function reapOne(h: TestHost, cid: number) {
  for (let i = 0; i < 50; i++) {
    const e = h.reap(1).find((x) => x.cid === cid);
    if (e !== undefined) return e;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`no completion for cid ${cid}`);
}
