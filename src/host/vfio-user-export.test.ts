import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import { BAR0_BYTES } from "../controller/nvme-function.ts";
import {
  addonPath,
  close,
  eventfd,
  eventfdRead,
  ftruncate,
  memfdCreate,
  unwatch,
  watch,
} from "../native/addon.ts";
import { GuestMemoryFd, type MappedRange, mapFdRange } from "../native/guest-memory-fd.ts";
import { AdminOpcode, NvmOpcode } from "../nvme/opcodes.ts";
import { AQA, CC, CSTS, Reg } from "../nvme/registers.ts";
import { type CqeFields, decodeCqe, encodeSqe, type SqeFields } from "../nvme/sqe.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { MigFlag, MigState } from "../vfio/states.ts";
import { VfioUserClient } from "../vfio-user/client.ts";
import { VfioUserError } from "../vfio-user/errors.ts";
import {
  DeviceFeature,
  DeviceFeatureFlag,
  DeviceInfoFlag,
  DmaMapFlag,
  Errno,
  IrqIndex,
  IrqInfoFlag,
  RegionFlag,
  RegionIndex,
} from "../vfio-user/protocol/constants.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import { HostNode } from "./host-node.ts";
import { SubsystemHost } from "./subsystem-host.ts";
import {
  createVfPortal,
  type ExportLogEntry,
  exportNvmeFunction,
  type FunctionExport,
} from "./vfio-user-export.ts";

const RAM_BYTES = 4 << 20;
const LBA_BYTES = 512;
const ASQ = 0x10000;
const ACQ = 0x11000;
const IOSQ = 0x20000;
const IOCQ = 0x21000;
const QUEUE_ENTRIES = 16;
const WRITE_BUF = 0x100000;
const READ_BUF = 0x200000;
const MESSAGE_ONLY_IOVA = 0x4000_0000;

async function rejectsErrno(p: Promise<unknown>, errno: number): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof VfioUserError, String(e));
    assert.equal(e.code, "remote-error");
    assert.equal(e.errno, errno);
    return true;
  });
}

async function until(what: string, predicate: () => boolean, deadlineMs = 3000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!predicate()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Resolves when `fd` becomes readable; rejects after `deadlineMs` (3000 by default). */
function waitReadable(fd: number, what: string, deadlineMs = 3000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unwatch(handle);
      reject(new Error(`timed out waiting for ${what}`));
    }, deadlineMs);
    const handle = watch(fd, "r", () => {
      clearTimeout(timer);
      unwatch(handle);
      resolve();
    });
  });
}

function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Queue bookkeeping of the raw guest. */
interface Queue {
  qid: number;
  sq: number;
  cq: number;
  tail: number;
  head: number;
  phase: number;
  /** eventfd of the CQ's MSI-X vector. */
  irq: number;
}

/**
 * A guest in the test: its RAM is a memfd shared with the device, SQEs are written into it and
 * doorbells rung by storing into the client's mmap of the BAR0 doorbell page (no message).
 */
class RawGuest {
  readonly view: DataView;
  doorbells!: Uint32Array;
  #doorbellMap: MappedRange | undefined;
  readonly queues = new Map<number, Queue>();
  cid = 1;

  constructor(
    public client: VfioUserClient,
    readonly ram: GuestMemoryFd,
  ) {
    this.view = new DataView(ram.buffer);
  }

  /** REGION_INFO BAR0 → mmap the sparse doorbell area with the fd that came with the reply. */
  async mapDoorbells(): Promise<void> {
    const info = await this.client.regionInfo(RegionIndex.BAR0);
    assert.ok((info.flags & RegionFlag.MMAP) !== 0);
    assert.deepEqual(info.sparseAreas, [{ offset: 0x1000, sizeBytes: 0x1000 }]);
    assert.ok(info.fd !== undefined, "the full region-info reply carries the doorbell fd");
    this.#doorbellMap?.unmap();
    this.#doorbellMap = mapFdRange(info.fd, info.offset + 0x1000, 0x1000, true);
    close(info.fd);
    const m = this.#doorbellMap;
    this.doorbells = new Uint32Array(m.buffer, m.bytes.byteOffset, 1024);
  }

  unmapDoorbells(): void {
    this.#doorbellMap?.unmap();
    this.#doorbellMap = undefined;
  }

  async reg32(offset: number): Promise<number> {
    const b = await this.client.regionRead(RegionIndex.BAR0, offset, 4);
    return new DataView(b.buffer, b.byteOffset).getUint32(0, true);
  }

  async writeReg(offset: number, value: number | bigint): Promise<void> {
    const b = new Uint8Array(typeof value === "bigint" ? 8 : 4);
    const v = new DataView(b.buffer);
    if (typeof value === "bigint") v.setBigUint64(0, value, true);
    else v.setUint32(0, value, true);
    await this.client.regionWrite(RegionIndex.BAR0, offset, b);
  }

  /** Writes one SQE, rings the SQ tail doorbell through the mmap, waits for its CQE and the interrupt. */
  async submit(qid: number, f: Omit<SqeFields, "cid">): Promise<CqeFields> {
    const q = this.queues.get(qid)!;
    const cid = this.cid++ & 0xffff;
    encodeSqe({ ...f, cid }, this.view, q.sq + q.tail * 64);
    q.tail = (q.tail + 1) % QUEUE_ENTRIES;
    this.doorbells[qid * 2] = q.tail;
    // Event-driven wait (a watch on the vector's eventfd, one deadline timer): nothing else wakes the
    // event loop, as in the daemon with QEMU, so the device's own poll loop must find the doorbell.
    await waitReadable(q.irq, `interrupt of queue ${qid} for cid ${cid}`);
    assert.notEqual(eventfdRead(q.irq), -1);
    const at = q.cq + q.head * 16;
    assert.equal(
      this.view.getUint16(at + 14, true) & 1,
      q.phase,
      "the CQE is in guest memory before the interrupt",
    );
    const cqe = decodeCqe(this.view, at);
    assert.equal(cqe.cid, cid);
    q.head = (q.head + 1) % QUEUE_ENTRIES;
    if (q.head === 0) q.phase ^= 1;
    this.doorbells[qid * 2 + 1] = q.head;
    return cqe;
  }

  bytes(at: number, length: number): Uint8Array {
    return new Uint8Array(this.ram.buffer, at, length);
  }
}

describe("vfio-user export of a VF (real sockets, memfd guest RAM, eventfds, doorbell mmap)", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvmig-export-"));
  const path = join(dir, "vf1.sock");
  let host: HostNode;
  let exp: FunctionExport;
  let ram: GuestMemoryFd;
  const logs: ExportLogEntry[] = [];
  const irqFds: number[] = [];
  let guest: RawGuest;
  const pattern = new Uint8Array(8192).map((_, i) => (i * 7 + 3) & 0xff);

  before(async () => {
    const store = createMemoryBlockStore({ lbaBytes: LBA_BYTES, lbaCount: (16 << 20) / LBA_BYTES });
    host = await HostNode.start({ name: "host-t", namespaces: [{ nsid: 1, store }], secondaryCount: 2 });
    await host.bringUpVf(1, 2);
    const portal = await createVfPortal(host, 1, { storage: "shared" });
    exp = exportNvmeFunction(host.vf(1), { path, label: "vf1", portal, onLog: (e) => logs.push(e) });
    ram = GuestMemoryFd.create("guest-ram", RAM_BYTES);
    for (let i = 0; i < 3; i++) irqFds.push(eventfd());
  });

  after(async () => {
    guest?.unmapDoorbells();
    guest?.client.close();
    exp?.close();
    await host?.stop();
    ram?.close();
    for (const fd of irqFds) close(fd);
    rmSync(dir, { recursive: true, force: true });
  });

  it("describes a PCI function with 9 regions, 5 IRQs, a sparse-mmap doorbell page and MSI-X vectors", async () => {
    const client = await VfioUserClient.connect(SocketTransport.connect(path));
    guest = new RawGuest(client, ram);
    const info = await client.deviceGetInfo();
    assert.deepEqual(info, { flags: DeviceInfoFlag.PCI | DeviceInfoFlag.RESET, numRegions: 9, numIrqs: 5 });
    const config = await client.regionInfo(RegionIndex.CONFIG);
    assert.equal(config.sizeBytes, 4096);
    assert.equal(config.flags, RegionFlag.READ | RegionFlag.WRITE);
    const bar4 = await client.regionInfo(RegionIndex.BAR4);
    assert.equal(bar4.flags & RegionFlag.MMAP, 0);
    assert.ok(bar4.sizeBytes >= 4096);
    for (const i of [1, 2, 3, 5, 6, 8]) assert.equal((await client.regionInfo(i)).sizeBytes, 0);
    const msix = await client.irqInfo(IrqIndex.MSIX);
    assert.equal(msix.count, host.vf(1).pci.descriptor.msix.vectors);
    assert.equal(msix.flags, IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE);
    assert.equal((await client.irqInfo(IrqIndex.INTX)).count, 1);
    assert.equal((await client.irqInfo(IrqIndex.MSI)).count, 0);
    assert.equal((await client.irqInfo(IrqIndex.ERR)).count, 1);
    assert.equal((await client.irqInfo(IrqIndex.REQ)).count, 1);
    // Config space: the VF's IDs; a 2-byte read at an odd offset and a 64-byte read work too.
    const id = await client.regionRead(RegionIndex.CONFIG, 0, 4);
    const vf = host.vf(1);
    assert.equal(new DataView(id.buffer, id.byteOffset).getUint32(0, true), vf.configRead(0, 4));
    assert.deepEqual(await client.regionRead(RegionIndex.CONFIG, 1, 2), id.subarray(1, 3));
    const head = await client.regionRead(RegionIndex.CONFIG, 0, 64);
    assert.deepEqual(head.subarray(0, 4), id);
    await guest.mapDoorbells();
  });

  it("brings the controller up by REGION_WRITEs and doorbell-page stores, then writes and reads back verified data", async () => {
    const c = guest.client;
    await c.dmaMap({ iova: 0, sizeBytes: RAM_BYTES, fd: ram.fd });
    await c.dmaMap({ iova: 0xfffc0000, sizeBytes: 0x40000, flags: DmaMapFlag.READ }); // fd-less, like QEMU's BIOS
    await c.setIrqs(IrqIndex.MSIX, 0, [irqFds[0]!, irqFds[1]!]);
    await guest.writeReg(Reg.AQA, AQA.make(QUEUE_ENTRIES - 1, QUEUE_ENTRIES - 1));
    await guest.writeReg(Reg.ASQ, BigInt(ASQ));
    await guest.writeReg(Reg.ACQ, BigInt(ACQ));
    await guest.writeReg(Reg.CC, CC.make({ en: true }));
    await until("CSTS.RDY", () => host.vf(1).controller.ready);
    assert.equal((await guest.reg32(Reg.CSTS)) & CSTS.RDY, CSTS.RDY);
    guest.queues.set(0, { qid: 0, sq: ASQ, cq: ACQ, tail: 0, head: 0, phase: 1, irq: irqFds[0]! });

    // Admin commands rung through the mmap'd page only: the poll loop must find them.
    const ccq = await guest.submit(0, {
      opc: AdminOpcode.CreateIoCompletionQueue,
      prp1: IOCQ,
      cdw10: ((QUEUE_ENTRIES - 1) << 16) | 1,
      cdw11: (1 << 16) | 0b11, // IV 1, IEN, PC
    });
    assert.equal(ccq.status, 0);
    const csq = await guest.submit(0, {
      opc: AdminOpcode.CreateIoSubmissionQueue,
      prp1: IOSQ,
      cdw10: ((QUEUE_ENTRIES - 1) << 16) | 1,
      cdw11: (1 << 16) | 0b1, // CQID 1, PC
    });
    assert.equal(csq.status, 0);
    guest.queues.set(1, { qid: 1, sq: IOSQ, cq: IOCQ, tail: 0, head: 0, phase: 1, irq: irqFds[1]! });

    guest.bytes(WRITE_BUF, pattern.length).set(pattern);
    const nlb = pattern.length / LBA_BYTES;
    const w = await guest.submit(1, {
      opc: NvmOpcode.Write,
      nsid: 1,
      prp1: WRITE_BUF,
      prp2: WRITE_BUF + 4096,
      cdw10: 100,
      cdw12: nlb - 1,
    });
    assert.equal(w.status, 0);
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: READ_BUF,
      prp2: READ_BUF + 4096,
      cdw10: 100,
      cdw12: nlb - 1,
    });
    assert.equal(r.status, 0);
    assert.deepEqual(guest.bytes(READ_BUF, pattern.length), pattern);
    assert.ok(exp.backend.polling, "the doorbell poll loop runs while the controller is ready");
    assert.deepEqual(exp.backend.messageOnlyRanges(), [
      { iova: 0xfffc0000, sizeBytes: 0x40000, flags: DmaMapFlag.READ },
    ]);
  });

  it("completes a command whose data lies in an fd-less mapping the client cannot serve (no DMA_WRITE handler) with Data Transfer Error", async () => {
    await guest.client.dmaMap({ iova: MESSAGE_ONLY_IOVA, sizeBytes: 0x10000 });
    const r = await guest.submit(1, { opc: NvmOpcode.Read, nsid: 1, prp1: MESSAGE_ONLY_IOVA, cdw12: 0 });
    assert.equal(r.status & 0x7ff, 0x04);
    await guest.client.dmaUnmap(MESSAGE_ONLY_IOVA, 0x10000);
  });

  it("answers errors for out-of-bounds region access and bad DMA maps, and keeps serving", async () => {
    const c = guest.client;
    await rejectsErrno(c.regionRead(RegionIndex.BAR0, BAR0_BYTES - 2, 4), Errno.EINVAL);
    await rejectsErrno(c.regionWrite(RegionIndex.CONFIG, 4094, new Uint8Array(4)), Errno.EINVAL);
    await rejectsErrno(c.regionRead(RegionIndex.BAR1, 0, 4), Errno.EINVAL);
    await rejectsErrno(c.regionRead(42, 0, 4), Errno.EINVAL);
    // Not a memory file: refused before any mmap.
    const efd = eventfd();
    await rejectsErrno(c.dmaMap({ iova: 0x8000_0000, sizeBytes: 4096, fd: efd }), Errno.EINVAL);
    close(efd);
    // A memory file shorter than the mapped range (touching it would raise SIGBUS).
    const small = memfdCreate("small");
    ftruncate(small, 4096);
    await rejectsErrno(c.dmaMap({ iova: 0x8000_0000, sizeBytes: 8192, fd: small }), Errno.EINVAL);
    close(small);
    await rejectsErrno(c.dmaMap({ iova: 4096, sizeBytes: 4096, fd: ram.fd }), Errno.EEXIST);
    await rejectsErrno(c.dmaUnmap(0, 4096), Errno.ENOENT);
    const names = logs.filter((l) => l.event.name === "dma-map-refused").length;
    assert.equal(names, 2);
    // Still serving.
    assert.equal((await guest.reg32(Reg.CSTS)) & CSTS.RDY, CSTS.RDY);
  });

  it("migration features go to the VF's portal: GET MIGRATION, a STOP_COPY save read to its end, back to RUNNING", async () => {
    const c = guest.client;
    const GET = DeviceFeatureFlag.GET;
    const SET = DeviceFeatureFlag.SET;
    const mig = await c.deviceFeature(DeviceFeature.MIGRATION | GET, undefined, 8);
    const flags = Number(new DataView(mig.data.buffer, mig.data.byteOffset).getBigUint64(0, true));
    assert.equal(flags & MigFlag.STOP_COPY, MigFlag.STOP_COPY);
    const setState = async (s: number): Promise<void> => {
      const d = new Uint8Array(8);
      const v = new DataView(d.buffer);
      v.setUint32(0, s, true);
      v.setUint32(4, 0xffffffff, true);
      const rep = await c.deviceFeature(DeviceFeature.MIG_DEVICE_STATE | SET, d);
      assert.equal(new DataView(rep.data.buffer, rep.data.byteOffset).getUint32(0, true), s);
    };
    await setState(MigState.STOP);
    await setState(MigState.STOP_COPY);
    const chunk = 4096;
    let total = 0;
    for (;;) {
      const part = await c.migDataRead(chunk);
      total += part.byteLength;
      if (part.byteLength < chunk) break;
    }
    assert.ok(total > 0, "the saving stream carries the controller state");
    assert.equal((await c.migDataRead(chunk)).byteLength, 0, "0 bytes at the permanent end of stream");
    await setState(MigState.STOP);
    await setState(MigState.RUNNING);
    const st = await c.deviceFeature(DeviceFeature.MIG_DEVICE_STATE | GET, undefined, 8);
    assert.equal(new DataView(st.data.buffer, st.data.byteOffset).getUint32(0, true), MigState.RUNNING);
    // The function runs again.
    const r = await guest.submit(1, { opc: NvmOpcode.Read, nsid: 1, prp1: READ_BUF, cdw10: 100, cdw12: 0 });
    assert.equal(r.status, 0);
  });

  it("drops the client's maps and eventfds on disconnect, keeps the device, and serves a re-attached client", async () => {
    guest.unmapDoorbells();
    guest.client.close();
    await until("detach", () => logs.some((l) => l.event.name === "client-state-dropped"));
    assert.equal(exp.server.connected, false);
    // Queues live in the client's RAM: its mapping is left to the GC instead of being yanked.
    assert.ok(logs.some((l) => l.event.name === "dma-unmap-deferred" && l.event.iova === 0));
    await until("poll loop stop", () => !exp.backend.polling);
    assert.ok(host.vf(1).controller.ready, "device state survives the disconnect");

    const fdsBefore = openFds();
    const client = await VfioUserClient.connect(SocketTransport.connect(path));
    guest.client = client;
    await guest.mapDoorbells();
    await client.dmaMap({ iova: 0, sizeBytes: RAM_BYTES, fd: ram.fd });
    await client.setIrqs(IrqIndex.MSIX, 0, [irqFds[0]!, irqFds[1]!]);
    assert.equal((await guest.reg32(Reg.CSTS)) & CSTS.RDY, CSTS.RDY);
    guest.bytes(READ_BUF, pattern.length).fill(0);
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: READ_BUF,
      prp2: READ_BUF + 4096,
      cdw10: 100,
      cdw12: pattern.length / LBA_BYTES - 1,
    });
    assert.equal(r.status, 0);
    assert.deepEqual(guest.bytes(READ_BUF, pattern.length), pattern);

    // DEVICE_RESET: the controller is reset (CSTS.RDY clears), the poll loop waits in standby.
    await client.reset();
    assert.equal((await guest.reg32(Reg.CSTS)) & CSTS.RDY, 0);
    await until("standby after reset", () => exp.backend.pollMode === "standby");

    // The controller becomes ready behind the client's back (as Set Controller State + Resume
    // through the PF do on a migration destination): doorbells in the page must still be found.
    const vf = host.vf(1);
    vf.barWrite32(0, Reg.AQA, AQA.make(QUEUE_ENTRIES - 1, QUEUE_ENTRIES - 1));
    vf.barWrite64(0, Reg.ASQ, BigInt(ASQ));
    vf.barWrite64(0, Reg.ACQ, BigInt(ACQ));
    vf.barWrite32(0, Reg.CC, CC.make({ en: true }));
    assert.ok(vf.controller.ready);
    await new Promise((r) => setTimeout(r, 20)); // whatever enabling scheduled has run by now
    guest.queues.set(0, { qid: 0, sq: ASQ, cq: ACQ, tail: 0, head: 0, phase: 1, irq: irqFds[0]! });
    guest.view.setUint16(ACQ + 14, 0, true); // old CQEs from before the reset must not look new
    const idc = await guest.submit(0, { opc: AdminOpcode.Identify, prp1: READ_BUF, cdw10: 1 });
    assert.equal(idc.status, 0);
    await client.reset();

    // After this client leaves, the server holds none of its fds any more.
    guest.unmapDoorbells();
    client.close();
    await until(
      "second detach",
      () => logs.filter((l) => l.event.name === "client-state-dropped").length === 2,
    );
    await until("fds released", () => openFds() <= fdsBefore);
  });
});

/**
 * Worker body: maps the doorbell page, waits until the main thread sets `go[0]`, sleeps `delayMs`,
 * stores `go[1]` into doorbell `slot`, then sleeps (neither a message nor its exit wakes the main loop).
 */
const RING_LATER = `
  const { workerData: w } = require("node:worker_threads");
  const addon = require(w.addonPath);
  const page = new Uint32Array(addon.mmap(w.fd, 0x1000, 0x1000, true));
  const go = new Int32Array(w.go);
  Atomics.wait(go, 0, 0);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, w.delayMs);
  page[w.slot] = Atomics.load(go, 1);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10000);
`;
const IDENTIFY_BUF = 0x80000;

describe("vfio-user export: the doorbell poll loop wakes the event loop by itself", () => {
  it("finds an admin doorbell written through the mmap when nothing else runs in the process", async () => {
    // A function without a host driver (no PF driver timers): only the export's own poll loop and
    // the test's deadline timer can wake the event loop after the doorbell store.
    const store = createMemoryBlockStore({ lbaBytes: LBA_BYTES, lbaCount: 2048 });
    const sub = new SubsystemHost({ namespaces: [{ nsid: 1, store }], secondaryCount: 1 });
    const dir = mkdtempSync(join(tmpdir(), "nvmig-export-alone-"));
    const exp = exportNvmeFunction(sub.pf, { path: join(dir, "pf.sock"), label: "pf", busyWindowMs: 200 });
    const ram = GuestMemoryFd.create("guest-ram-alone", 1 << 20);
    const irq = eventfd();
    const client = await VfioUserClient.connect(SocketTransport.connect(join(dir, "pf.sock")));
    const guest = new RawGuest(client, ram);
    let worker: Worker | undefined;
    try {
      await guest.mapDoorbells();
      await client.dmaMap({ iova: 0, sizeBytes: ram.sizeBytes, fd: ram.fd });
      await client.setIrqs(IrqIndex.MSIX, 0, [irq]);
      await guest.writeReg(Reg.AQA, AQA.make(QUEUE_ENTRIES - 1, QUEUE_ENTRIES - 1));
      await guest.writeReg(Reg.ASQ, BigInt(ASQ));
      await guest.writeReg(Reg.ACQ, BigInt(ACQ));
      await guest.writeReg(Reg.CC, CC.make({ en: true }));
      assert.equal((await guest.reg32(Reg.CSTS)) & CSTS.RDY, CSTS.RDY);
      guest.queues.set(0, { qid: 0, sq: ASQ, cq: ACQ, tail: 0, head: 0, phase: 1, irq });
      // The other thread that will store a doorbell later; started now so its start-up is over.
      const go = new Int32Array(new SharedArrayBuffer(8));
      worker = new Worker(RING_LATER, {
        eval: true,
        workerData: { addonPath, fd: exp.backend.doorbellFd, slot: 0, go: go.buffer, delayMs: 50 },
      });
      await new Promise((r) => worker!.once("online", r));

      const idc = await guest.submit(0, { opc: AdminOpcode.Identify, prp1: IDENTIFY_BUF, cdw10: 1 });
      assert.equal(idc.status, 0);
      assert.equal(new DataView(ram.buffer).getUint16(IDENTIFY_BUF, true), 0x1d1d);

      // Right after a completion the loop is in its busy phase (200 ms here). The next doorbell is
      // stored 50 ms later by the other thread, which wakes nothing in this process: only the poll
      // loop can find it (the test waits on the eventfd alone, with one deadline timer).
      // What keeps it turning in the busy phase is a ref'd immediate: an unref'd one would let libuv
      // block in epoll until something else happened (seen with QEMU: doorbells found once a second).
      assert.ok(
        process.getActiveResourcesInfo().includes("Immediate"),
        "the busy poll loop holds a ref'd immediate",
      );
      const q = guest.queues.get(0)!;
      encodeSqe(
        { opc: AdminOpcode.Identify, cid: 0x77, prp1: IDENTIFY_BUF + 4096, cdw10: 1 },
        guest.view,
        ASQ + q.tail * 64,
      );
      q.tail += 1;
      Atomics.store(go, 1, q.tail);
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      await waitReadable(irq, "interrupt of a doorbell stored by another thread");
      const cqe = decodeCqe(guest.view, ACQ + q.head * 16);
      assert.equal(cqe.cid, 0x77);
      assert.equal(new DataView(ram.buffer).getUint16(IDENTIFY_BUF + 4096, true), 0x1d1d);
    } finally {
      await worker?.terminate();
      guest.unmapDoorbells();
      client.close();
      exp.close();
      ram.close();
      close(irq);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
