/**
 * Suspend and user-data logging: the UDMQ's last entry (ESA 3 on Suspend, ESA 2 on Track Send LACT 0)
 * must follow every change the host may rely on. A Suspend waits for the commands the controlled
 * controller already fetched; a Write among them whose data arrives later (over remote DMA, or waiting
 * for a flush) must be in the change log before ESA 3, or a local-storage migration loses its blocks.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../../host/subsystem-host.ts";
import type { RemoteDmaAccessor } from "../../memory/dma.ts";
import {
  decodeUserDataMigrationQueueEntry,
  Esa,
  encodeControllerDataQueue,
  Lbacir,
} from "../../nvme/controller-data-queue.ts";
import { encodeMigrationSend } from "../../nvme/migration-commands.ts";
import { Reg } from "../../nvme/registers.ts";
import { Status, statusName } from "../../nvme/status.ts";
import { encodeTrackSend } from "../../nvme/track-commands.ts";
import type { BlockStore } from "../../storage/block-store.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { TestHost } from "../test-support.ts";

const REMOTE_IOVA = 0x4000_0000;
const REMOTE_BYTES = 1 << 20;
const LBA = 512;
/** CDW12 bit 30: Force Unit Access. */
const FUA = 1 << 30;

/** Remote guest memory whose reads are held until `release()`. */
class HeldRemote implements RemoteDmaAccessor {
  readonly mem = new Uint8Array(REMOTE_BYTES);
  hold = true;
  #held: (() => void)[] = [];

  read(iova: number, n: number): Promise<Uint8Array> {
    return this.#later(() => this.mem.slice(iova - REMOTE_IOVA, iova - REMOTE_IOVA + n));
  }

  write(iova: number, data: Uint8Array): Promise<void> {
    const copy = data.slice();
    return this.#later(() => {
      this.mem.set(copy, iova - REMOTE_IOVA);
    });
  }

  get heldCount(): number {
    return this.#held.length;
  }

  release(): void {
    const h = this.#held;
    this.#held = [];
    for (const f of h) f();
  }

  #later<T>(f: () => T): Promise<T> {
    return new Promise<T>((resolve) => {
      if (this.hold) this.#held.push(() => resolve(f()));
      else resolve(f());
    });
  }
}

/** A block store whose flushes are held until `release()`. */
class HeldFlushStore implements BlockStore {
  hold = false;
  #held: (() => void)[] = [];
  constructor(private readonly inner: BlockStore) {}
  get lbaBytes(): number {
    return this.inner.lbaBytes;
  }
  get lbaCount(): number {
    return this.inner.lbaCount;
  }
  read(offsetBytes: number, dst: Uint8Array): void {
    this.inner.read(offsetBytes, dst);
  }
  write(offsetBytes: number, src: Uint8Array): void {
    this.inner.write(offsetBytes, src);
  }
  writeZeroes(offsetBytes: number, lengthBytes: number): void {
    this.inner.writeZeroes(offsetBytes, lengthBytes);
  }
  deallocate(offsetBytes: number, lengthBytes: number): void {
    this.inner.deallocate(offsetBytes, lengthBytes);
  }
  flush(): Promise<void> {
    if (!this.hold) return this.inner.flush();
    return new Promise((resolve, reject) => this.#held.push(() => this.inner.flush().then(resolve, reject)));
  }
  close(): void {
    this.inner.close();
  }
  release(): void {
    const h = this.#held;
    this.#held = [];
    for (const f of h) f();
  }
}

/** PF + VF1 (CNTLID 1) with one I/O queue pair, a remote range in VF1's DMA map, and a UDMQ logging. */
async function setup() {
  const store = new HeldFlushStore(createMemoryBlockStore({ lbaBytes: LBA, lbaCount: 1 << 16 }));
  const host = new SubsystemHost({ namespaces: [{ nsid: 1, store }], secondaryCount: 2 });
  const pf = new TestHost({ subsystem: host.subsystem, controller: host.pf.controller });
  pf.enable();
  host.pf.configWrite(0x110, 2, 1); // SR-IOV NumVFs
  host.pf.configWrite(0x108, 2, 1 | 8); // VF Enable | VF MSE
  for (const cdw10 of [8 | (1 << 16), 8 | (1 << 8) | (1 << 16)])
    assert.equal((await pf.admin({ opc: 0x1c, cdw10, cdw11: 3 })).status, 0);
  assert.equal((await pf.admin({ opc: 0x1c, cdw10: 9 | (1 << 16) })).status, 0);
  const guest = new TestHost({ subsystem: host.subsystem, controller: host.vfs.get(1)!.controller });
  const remote = new HeldRemote();
  assert.ok(guest.dma.mapRemote(REMOTE_IOVA, REMOTE_BYTES, remote, true));
  guest.enable();
  await guest.createIoQueuePair(1, 32, 1);
  const q = pf.alloc(4096);
  const created = await pf.admin({
    opc: 0x45,
    prp1: q,
    ...encodeControllerDataQueue({ sel: 0, qt: 0, pc: true, cqs: 1, cdqsize: 16 * 8 }),
  });
  assert.equal(created.status, 0, statusName(created.status));
  const cdqid = created.dw0 & 0xffff;
  assert.equal((await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 1, cdqid }) })).status, 0);
  /** The posted UDMQ entries (phase 1: the queue has not wrapped) as [esa, lbacir, nsid, slba, nlb]. */
  const posted = () => {
    const out: number[][] = [];
    for (let i = 0; i < 16; i++) {
      const e = decodeUserDataMigrationQueueEntry(pf.ram.subarray(q + i * 32, q + i * 32 + 32));
      if (e.phase !== 1) break;
      out.push([e.esa, e.lbacir, e.nsid, e.slba, e.nlb]);
    }
    return out;
  };
  const stored = (slba: number, n: number) => {
    const b = new Uint8Array(n);
    store.read(slba * LBA, b);
    return b;
  };
  return { host, pf, guest, remote, store, cdqid, posted, stored };
}

function suspendSqe(dudmq: boolean) {
  return { opc: 0x41, ...encodeMigrationSend({ sel: 0, cntlid: 1, stype: 1, dudmq, uidx: 0 }) };
}

/** Lets held promise chains run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function reapOne(h: TestHost, qid: number, cid: number) {
  for (let i = 0; i < 50; i++) {
    const e = h.reap(qid).find((x) => x.cid === cid);
    if (e !== undefined) return e;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`no completion for cid ${cid} on queue ${qid}`);
}

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 13 + seed) & 0xff);
}

test("suspend: a write whose data lands after the suspend started is in the change log before ESA 3", async () => {
  const { pf, guest, remote, cdqid, posted, stored } = await setup();
  const data = pattern(2 * LBA, 5);
  remote.mem.set(data, 0x2000);
  // The guest's Write is fetched; its data is still on the way (remote DMA held).
  const wcid = guest.submit(1, { opc: 0x01, nsid: 1, prp1: REMOTE_IOVA + 0x2000, cdw10: 30, cdw12: 1 });
  guest.pass();
  await settle();
  assert.equal(remote.heldCount, 1);
  assert.deepEqual(guest.reap(1), []);

  // Suspend (with DUDMQ) from the PF: it waits for the Write, and so does the end of logging.
  const scid = pf.submit(0, suspendSqe(true));
  pf.pass();
  await settle();
  assert.deepEqual(pf.reap(0), [], "the Suspend waits for the fetched Write");
  assert.deepEqual(posted(), [], "no ESA 3 while a fetched command may still change blocks");

  remote.release();
  assert.equal((await reapOne(guest, 1, wcid)).status, 0);
  const s = await reapOne(pf, 0, scid);
  assert.equal(s.status, 0, statusName(s.status));
  assert.deepEqual(stored(30, 2 * LBA), data);
  assert.deepEqual(posted(), [
    [Esa.First, Lbacir.RangeValid, 1, 30, 1],
    [Esa.LastControllerSuspended, Lbacir.NoRange, 0, 0, 0],
  ]);
  // DUDMQ deleted the queue once the end entry was posted.
  const gone = await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 1, cdqid }) });
  assert.equal(gone.status, Status.InvalidControllerDataQueue);
});

test("suspend: a FUA write waiting for its flush is logged before ESA 3, and ESA 3 waits for the flush", async () => {
  const { pf, guest, store, posted } = await setup();
  const buf = guest.alloc(4096);
  guest.ram.set(pattern(LBA, 9), buf);
  store.hold = true;
  const wcid = guest.submit(1, { opc: 0x01, nsid: 1, prp1: buf, cdw10: 40, cdw12: FUA });
  guest.pass();
  await settle();
  assert.deepEqual(guest.reap(1), [], "the Write waits for its flush");

  const scid = pf.submit(0, suspendSqe(false));
  pf.pass();
  await settle();
  assert.deepEqual(pf.reap(0), []);
  assert.deepEqual(posted(), [[Esa.First, Lbacir.RangeValid, 1, 40, 0]]);

  store.hold = false;
  store.release();
  assert.equal((await reapOne(guest, 1, wcid)).status, 0);
  assert.equal((await reapOne(pf, 0, scid)).status, 0);
  assert.deepEqual(posted(), [
    [Esa.First, Lbacir.RangeValid, 1, 40, 0],
    [Esa.LastControllerSuspended, Lbacir.NoRange, 0, 0, 0],
  ]);
});

test("suspend with nothing outstanding posts ESA 3 before the Suspend completes", async () => {
  const { pf, guest, remote, posted } = await setup();
  remote.hold = false;
  assert.equal(
    (await guest.command(1, { opc: 0x01, nsid: 1, prp1: REMOTE_IOVA, cdw10: 3, cdw12: 0 })).status,
    0,
  );
  const scid = pf.submit(0, suspendSqe(false));
  pf.pass();
  // Completed within the pass: the end entry is already there when the host sees the completion.
  const done = pf.reap(0);
  assert.deepEqual(
    done.map((e) => [e.cid, e.status]),
    [[scid, 0]],
  );
  assert.deepEqual(posted(), [
    [Esa.First, Lbacir.RangeValid, 1, 3, 0],
    [Esa.LastControllerSuspended, Lbacir.NoRange, 0, 0, 0],
  ]);
});

test("suspend: a write dropped by a controller reset while its data was on the way changes nothing after ESA 3", async () => {
  const { pf, guest, remote, posted, stored } = await setup();
  remote.mem.set(pattern(LBA, 1), 0);
  const before = stored(50, LBA);
  guest.submit(1, { opc: 0x01, nsid: 1, prp1: REMOTE_IOVA, cdw10: 50, cdw12: 0 });
  guest.pass();
  await settle();
  const scid = pf.submit(0, suspendSqe(false));
  pf.pass();
  await settle();
  assert.deepEqual(pf.reap(0), []);
  // The VF is reset (CC.EN 1 → 0): the Write is dropped, the VF is idle, the Suspend completes.
  guest.controller.write32(Reg.CC, 0);
  assert.equal((await reapOne(pf, 0, scid)).status, 0);
  assert.deepEqual(posted(), [[Esa.LastControllerSuspended, Lbacir.NoRange, 0, 0, 0]]);
  remote.release();
  await settle();
  assert.deepEqual(stored(50, LBA), before, "the dropped Write never reaches the store");
  assert.equal(posted().length, 1);
});

test("Track Send LACT 0: every write completed before it is logged before ESA 2, remote data included", async () => {
  const { pf, guest, remote, cdqid, posted } = await setup();
  const wcid = guest.submit(1, { opc: 0x01, nsid: 1, prp1: REMOTE_IOVA, cdw10: 60, cdw12: 3 });
  guest.pass();
  await settle();
  remote.release();
  // The change is logged when the data reaches the store, before the completion is posted: checked
  // right after the completion is seen, with no further turn of the event loop.
  assert.equal((await reapOne(guest, 1, wcid)).status, 0);
  assert.deepEqual(posted(), [[Esa.First, Lbacir.RangeValid, 1, 60, 3]]);
  assert.equal((await pf.admin({ opc: 0x3d, ...encodeTrackSend({ sel: 0, lact: 0, cdqid }) })).status, 0);
  assert.deepEqual(posted(), [
    [Esa.First, Lbacir.RangeValid, 1, 60, 3],
    [Esa.LastLoggingStopped, Lbacir.NoRange, 0, 0, 0],
  ]);
});
