import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { HostNode } from "../../host/host-node.ts";
import { createVfPortal, exportNvmeFunction, type FunctionExport } from "../../host/vfio-user-export.ts";
import { GuestMemoryFd } from "../../native/guest-memory-fd.ts";
import { AdminOpcode, NvmOpcode } from "../../nvme/opcodes.ts";
import { AQA, CC, DOORBELL_BASE, Reg } from "../../nvme/registers.ts";
import { type CqeFields, decodeCqe, encodeSqe, type SqeFields } from "../../nvme/sqe.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { Errno, MigFlag, MigState } from "../../vfio/states.ts";
import { VfioUserClient } from "../../vfio-user/client.ts";
import { DeviceFeature, DeviceFeatureFlag, RegionIndex } from "../../vfio-user/protocol/constants.ts";
import { SocketTransport } from "../../vfio-user/socket-transport.ts";
import type { DeviceEndpoint, VmDestination, VmSource } from "../endpoints.ts";
import { migrate } from "../orchestrator.ts";
import { vfioUserDeviceEndpoint } from "./vfio-user-device-endpoint.ts";

const RAM_BYTES = 4 << 20;
const LBA_BYTES = 512;
const NAMESPACE_BYTES = 256 << 10;
const ASQ = 0x10000;
const ACQ = 0x11000;
const IOSQ = 0x20000;
const IOCQ = 0x21000;
const QUEUE_ENTRIES = 16;
const DATA_BUF = 0x100000;
/** A second DMA mapping far above RAM, so a split DMA logging report has bits in its second piece. */
const HIGH_IOVA = 0x0c00_0000;
const HIGH_BYTES = 0x10000;
/** The servers' max_data_xfer_size: the smallest allowed, so reads, writes and bitmaps get split. */
const MAX_XFER = 4096;

async function until(what: string, predicate: () => boolean, deadlineMs = 3000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!predicate()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

interface Queue {
  sq: number;
  cq: number;
  tail: number;
  head: number;
  phase: number;
}

/**
 * A guest driving a function through REGION_WRITEs (registers and doorbells) and polling its CQs in
 * its RAM (no interrupts). Its queue bookkeeping moves with it when `client` changes (migration).
 */
class Guest {
  readonly view: DataView;
  readonly queues = new Map<number, Queue>();
  cid = 1;

  constructor(
    public client: VfioUserClient,
    readonly ram: GuestMemoryFd,
  ) {
    this.view = new DataView(ram.buffer);
  }

  async reg32(offset: number): Promise<number> {
    const b = await this.client.regionRead(RegionIndex.BAR0, offset, 4);
    return new DataView(b.buffer, b.byteOffset).getUint32(0, true);
  }

  async reg64(offset: number): Promise<bigint> {
    const b = await this.client.regionRead(RegionIndex.BAR0, offset, 8);
    return new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
  }

  async writeReg(offset: number, value: number | bigint): Promise<void> {
    const b = new Uint8Array(typeof value === "bigint" ? 8 : 4);
    const v = new DataView(b.buffer);
    if (typeof value === "bigint") v.setBigUint64(0, value, true);
    else v.setUint32(0, value, true);
    await this.client.regionWrite(RegionIndex.BAR0, offset, b);
  }

  async submit(qid: number, f: Omit<SqeFields, "cid">): Promise<CqeFields> {
    const q = this.queues.get(qid)!;
    const cid = this.cid++ & 0xffff;
    encodeSqe({ ...f, cid }, this.view, q.sq + q.tail * 64);
    q.tail = (q.tail + 1) % QUEUE_ENTRIES;
    await this.writeReg(DOORBELL_BASE + qid * 8, q.tail);
    const at = q.cq + q.head * 16;
    await until(`CQE of cid ${cid}`, () => (this.view.getUint16(at + 14, true) & 1) === q.phase);
    const cqe = decodeCqe(this.view, at);
    assert.equal(cqe.cid, cid);
    q.head = (q.head + 1) % QUEUE_ENTRIES;
    if (q.head === 0) q.phase ^= 1;
    await this.writeReg(DOORBELL_BASE + qid * 8 + 4, q.head);
    return cqe;
  }
}

interface Side {
  host: HostNode;
  exp: FunctionExport;
  client: VfioUserClient;
  endpoint: DeviceEndpoint;
  /** Sizes of every MIG_DATA_READ / MIG_DATA_WRITE, and flags of every DEVICE_FEATURE, sent. */
  reads: number[];
  writes: number[];
  features: number[];
}

/** Every 1 bit of a VFIO bitmap, as page numbers. */
function pagesOf(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  bitmap.forEach((b, i) => {
    for (let bit = 0; bit < 8; bit++) if ((b >> bit) & 1) out.push(i * 8 + bit);
  });
  return out;
}

describe("vfioUserDeviceEndpoint over real vfio-user sockets to NVMe VFs on two hosts", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvmig-xproc-"));
  let ram: GuestMemoryFd;
  let high: GuestMemoryFd;
  let a: Side;
  let b: Side;
  let guest: Guest;

  const side = async (name: string): Promise<Side> => {
    // Local storage: each host has its own namespace store, and the namespace moves with the state.
    const store = createMemoryBlockStore({ lbaBytes: LBA_BYTES, lbaCount: NAMESPACE_BYTES / LBA_BYTES });
    const host = await HostNode.start({ name, namespaces: [{ nsid: 1, store }], secondaryCount: 2 });
    await host.bringUpVf(1, 2);
    const portal = await createVfPortal(host, 1, { storage: "local" });
    const path = join(dir, `${name}.sock`);
    const exp = exportNvmeFunction(host.vf(1), {
      path,
      label: `${name}/vf1`,
      portal,
      server: { maxDataXferBytes: MAX_XFER },
    });
    const client = await VfioUserClient.connect(SocketTransport.connect(path));
    await client.dmaMap({ iova: 0, sizeBytes: RAM_BYTES, fd: ram.fd });
    await client.dmaMap({ iova: HIGH_IOVA, sizeBytes: HIGH_BYTES, fd: high.fd });
    const s: Side = {
      host,
      exp,
      client,
      endpoint: vfioUserDeviceEndpoint(client),
      reads: [],
      writes: [],
      features: [],
    };
    // Spies on the wire requests the endpoint makes (sizes asked and written, feature flags).
    const read = client.migDataRead.bind(client);
    const write = client.migDataWrite.bind(client);
    const feature = client.deviceFeature.bind(client);
    client.migDataRead = (n) => {
      s.reads.push(n);
      return read(n);
    };
    client.migDataWrite = (d) => {
      s.writes.push(d.byteLength);
      return write(d);
    };
    client.deviceFeature = (f, d, r) => {
      s.features.push(f);
      return feature(f, d, r);
    };
    return s;
  };

  before(async () => {
    ram = GuestMemoryFd.create("xproc-ram", RAM_BYTES);
    high = GuestMemoryFd.create("xproc-high", HIGH_BYTES);
    a = await side("host-a");
    b = await side("host-b");
    guest = new Guest(a.client, ram);
    // The guest brings up VF1 on host A: admin queue, one I/O queue pair (interrupts off), some data.
    await guest.writeReg(Reg.AQA, AQA.make(QUEUE_ENTRIES - 1, QUEUE_ENTRIES - 1));
    await guest.writeReg(Reg.ASQ, BigInt(ASQ));
    await guest.writeReg(Reg.ACQ, BigInt(ACQ));
    await guest.writeReg(Reg.CC, CC.make({ en: true }));
    await until("CSTS.RDY", () => a.host.vf(1).controller.ready);
    guest.queues.set(0, { sq: ASQ, cq: ACQ, tail: 0, head: 0, phase: 1 });
    const cq = await guest.submit(0, {
      opc: AdminOpcode.CreateIoCompletionQueue,
      prp1: IOCQ,
      cdw10: ((QUEUE_ENTRIES - 1) << 16) | 1,
      cdw11: 0b1, // PC, interrupts off
    });
    assert.equal(cq.status, 0);
    const sq = await guest.submit(0, {
      opc: AdminOpcode.CreateIoSubmissionQueue,
      prp1: IOSQ,
      cdw10: ((QUEUE_ENTRIES - 1) << 16) | 1,
      cdw11: (1 << 16) | 0b1, // CQID 1, PC
    });
    assert.equal(sq.status, 0);
    guest.queues.set(1, { sq: IOSQ, cq: IOCQ, tail: 0, head: 0, phase: 1 });
    new Uint8Array(ram.buffer, DATA_BUF, 4096).fill(0x5a);
    const w = await guest.submit(1, { opc: NvmOpcode.Write, nsid: 1, prp1: DATA_BUF, cdw10: 8, cdw12: 7 });
    assert.equal(w.status, 0);
  });

  after(async () => {
    for (const s of [a, b]) {
      s?.client.close();
      s?.exp.close();
      await s?.host.stop();
    }
    ram?.close();
    high?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers device errnos as statuses: bad arcs (with reachedState), data I/O in RUNNING, no PRECOPY_INFO", async () => {
    const ep = a.endpoint;
    const flags = await ep.migrationFlags();
    assert.equal(flags & MigFlag.STOP_COPY, MigFlag.STOP_COPY);
    assert.deepEqual(await ep.setState(MigState.ERROR), {
      ok: false,
      errno: Errno.EINVAL,
      reachedState: MigState.RUNNING,
    });
    assert.deepEqual(await ep.setState(8 as MigState), {
      ok: false,
      errno: Errno.EINVAL,
      reachedState: MigState.RUNNING,
    });
    assert.deepEqual(await ep.writeData(new Uint8Array(64)), { ok: false, errno: Errno.EINVAL });
    assert.deepEqual(await ep.readData(4096), { ok: false, errno: Errno.EINVAL });
    assert.deepEqual(await ep.readData(-1), { ok: false, errno: Errno.EINVAL });
    assert.deepEqual(await ep.precopyInfo(), { ok: false, errno: Errno.ENOTTY });
    assert.deepEqual(await ep.setState(MigState.RUNNING), { ok: true }, "same state: no work");
    // The failed SETs were followed by a GET of the state (that is where reachedState came from).
    const GET_STATE = DeviceFeature.MIG_DEVICE_STATE | DeviceFeatureFlag.GET;
    assert.equal(a.features.filter((f) => f === GET_STATE).length, 2);
    // The function still works.
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: DATA_BUF + 8192,
      cdw10: 8,
      cdw12: 0,
    });
    assert.equal(r.status, 0);
  });

  it("DMA logging: start, a report split at max_data_xfer_size OR-ed into the caller's bitmap, stop", async () => {
    const ep = a.endpoint;
    const ranges = [
      { iova: 0n, length: BigInt(RAM_BYTES) },
      { iova: BigInt(HIGH_IOVA), length: BigInt(HIGH_BYTES) },
    ];
    assert.deepEqual(await ep.dmaLoggingStart(ranges, 4096n), { ok: true });
    assert.deepEqual(await ep.dmaLoggingStart(ranges, 4096n), { ok: false, errno: Errno.EBUSY });
    // The device writes guest memory: read data into the high mapping, a CQE into the I/O CQ.
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: HIGH_IOVA + 0x2000,
      cdw10: 8,
      cdw12: 0,
    });
    assert.equal(r.status, 0);
    assert.equal(new Uint8Array(high.buffer, 0x2000, 1)[0], 0x5a);

    // 256 MiB at 4 KiB pages: an 8 KiB bitmap, two reports of 4 KiB (the server's max_data_xfer_size).
    const bitmap = new Uint8Array(8192);
    const callerPage = 40000; // set by the caller before the call: must stay set
    bitmap[callerPage / 8] = 1 << (callerPage % 8);
    const REPORT = DeviceFeature.DMA_LOGGING_REPORT | DeviceFeatureFlag.GET;
    const before = a.features.filter((f) => f === REPORT).length;
    assert.deepEqual(await ep.dmaLoggingReport(0n, 256n << 20n, 4096n, bitmap), { ok: true });
    assert.equal(a.features.filter((f) => f === REPORT).length - before, 2);
    const highPage = (HIGH_IOVA + 0x2000) / 4096;
    const cqPage = IOCQ / 4096;
    const pages = pagesOf(bitmap);
    assert.ok(pages.includes(highPage), `page ${highPage} (second report) in ${pages}`);
    assert.ok(pages.includes(cqPage), `page ${cqPage} (CQ) in ${pages}`);
    assert.ok(pages.includes(callerPage));
    for (const p of pages) {
      assert.ok(
        p < RAM_BYTES / 4096 ||
          p === callerPage ||
          (p >= HIGH_IOVA / 4096 && p < (HIGH_IOVA + HIGH_BYTES) / 4096),
      );
    }
    // The report cleared the log.
    const again = new Uint8Array(8192);
    assert.deepEqual(await ep.dmaLoggingReport(0n, 256n << 20n, 4096n, again), { ok: true });
    assert.deepEqual(pagesOf(again), []);
    // Device-side validation comes back as errnos; a too small bitmap is refused before sending.
    assert.deepEqual(await ep.dmaLoggingReport(0n, 4096n, 1000n, new Uint8Array(8)), {
      ok: false,
      errno: Errno.EINVAL,
    });
    assert.deepEqual(await ep.dmaLoggingReport(0n, 1n << 20n, 4096n, new Uint8Array(8)), {
      ok: false,
      errno: Errno.EINVAL,
    });
    assert.deepEqual(await ep.dmaLoggingStop(), { ok: true });
    assert.deepEqual(await ep.dmaLoggingReport(0n, 4096n, 4096n, new Uint8Array(8)), {
      ok: false,
      errno: Errno.EINVAL,
    });
  });

  it("moves the device state from VF1 on host A to VF1 on host B: the queues run there", async (t) => {
    const src = a.endpoint;
    const dst = b.endpoint;
    const regs = async () => ({
      cc: await guest.reg32(Reg.CC),
      aqa: await guest.reg32(Reg.AQA),
      asq: await guest.reg64(Reg.ASQ),
      acq: await guest.reg64(Reg.ACQ),
    });
    const before = await regs();
    assert.equal(before.cc & CC.EN, CC.EN);
    const size = await src.dataSize();
    assert.ok(size.ok && size.stopCopyLength > 0n);

    assert.deepEqual(await dst.setState(MigState.RESUMING), { ok: true });
    assert.deepEqual(await src.setState(MigState.STOP_COPY), { ok: true });
    const parts: Uint8Array[] = [];
    for (;;) {
      const r = await src.readData(1 << 20);
      assert.ok(r.ok);
      if (r.bytes.byteLength === 0) break;
      parts.push(r.bytes);
    }
    const state = Buffer.concat(parts);
    assert.ok(state.byteLength > MAX_XFER, `state of ${state.byteLength} bytes needs several transfers`);
    assert.ok(a.reads.length >= 2 && a.reads.every((n) => n <= MAX_XFER), `reads ${a.reads}`);
    t.diagnostic(`stream ${state.byteLength} bytes in ${a.reads.length} MIG_DATA_READs`);
    // STOP_COPY → PRE_COPY is no arc: EINVAL, and the device is still in STOP_COPY.
    assert.deepEqual(await src.setState(MigState.PRE_COPY), {
      ok: false,
      errno: Errno.EINVAL,
      reachedState: MigState.STOP_COPY,
    });
    assert.deepEqual(
      await src.readData(4096),
      { ok: true, bytes: new Uint8Array(0) },
      "the end stays the end",
    );

    assert.deepEqual(await dst.writeData(new Uint8Array(state)), { ok: true });
    assert.ok(b.writes.length >= 2 && b.writes.every((n) => n <= MAX_XFER), `writes ${b.writes}`);
    assert.equal(
      b.writes.reduce((x, y) => x + y, 0),
      state.byteLength,
    );
    assert.deepEqual(await dst.setState(MigState.RUNNING), { ok: true });
    assert.deepEqual(await src.setState(MigState.STOP), { ok: true });

    // The destination controller has the registers and queues; the guest carries on there.
    guest.client = b.client;
    assert.deepEqual(await regs(), before);
    const c = b.host.vf(1).controller;
    assert.ok(c.ready);
    assert.equal(c.sqs[1]?.baseIova, IOSQ);
    assert.equal(c.cqs[1]?.baseIova, IOCQ);
    assert.equal(c.sqs[0]?.baseIova, ASQ);
    assert.equal(c.sqs[1]?.tail, guest.queues.get(1)!.tail);
    const buf = new Uint8Array(ram.buffer, DATA_BUF + 0x3000, 512).fill(0);
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: DATA_BUF + 0x3000,
      cdw10: 8,
      cdw12: 0,
    });
    assert.equal(r.status, 0);
    assert.ok(buf.every((x) => x === 0x5a));
    const id = await guest.submit(0, { opc: AdminOpcode.Identify, prp1: DATA_BUF + 0x4000, cdw10: 1 });
    assert.equal(id.status, 0);
  });

  it("migrates back through the orchestrator with the endpoint on both sides", async (t) => {
    // Host A's function is suspended since it was the source: reset it (DEVICE_RESET) and bring it up.
    await a.endpoint.reset();
    await a.host.bringUpVf(1, 2);
    const pages: number[] = [];
    const vm: VmSource = {
      ramBytes: RAM_BYTES,
      startDirtyLog: () => {},
      collectDirty: () => new Uint32Array(0),
      dirtyPageCount: () => 0,
      stopDirtyLog: () => {},
      page: (p) => new Uint8Array(ram.buffer, p * 4096, 4096),
      pauseVcpus: async () => {},
      resumeVcpus: () => {},
    };
    let started = false;
    const dest: VmDestination = {
      // Both hosts see the one memfd: the pages are already in place; only count them.
      writePages: async (list) => void pages.push(...list),
      start: async () => {
        started = true;
      },
      discard: async () => {},
    };
    const report = await migrate({
      source: { device: b.endpoint, vm },
      destination: { device: a.endpoint, vm: dest },
      maxDowntimeMs: 10_000,
      maxIterations: 3,
    });
    assert.equal(report.result, "completed", JSON.stringify(report.error));
    assert.ok(started);
    assert.ok(report.stateBytes > 0);
    assert.ok(pages.length >= RAM_BYTES / 4096);
    t.diagnostic(
      `back: ${report.precopyIterations} pre-copy iterations, ${report.deviceBytesTransferred} device bytes, ` +
        `device downtime ${report.deviceDowntimeMs} ms`,
    );

    guest.client = a.client;
    assert.equal((await guest.reg32(Reg.CC)) & CC.EN, CC.EN);
    const buf = new Uint8Array(ram.buffer, DATA_BUF + 0x5000, 512).fill(0);
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: DATA_BUF + 0x5000,
      cdw10: 8,
      cdw12: 0,
    });
    assert.equal(r.status, 0);
    assert.ok(buf.every((x) => x === 0x5a));
  });
});
