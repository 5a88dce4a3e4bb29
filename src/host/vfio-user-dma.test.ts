import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { GuestMemoryFd } from "../native/guest-memory-fd.ts";
import { AdminOpcode, NvmOpcode } from "../nvme/opcodes.ts";
import { AQA, CC, Reg } from "../nvme/registers.ts";
import { type CqeFields, decodeCqe, encodeSqe, type SqeFields } from "../nvme/sqe.ts";
import { Status, statusName } from "../nvme/status.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { VfioUserClient, type VfioUserClientOptions } from "../vfio-user/client.ts";
import { Errno, RegionIndex } from "../vfio-user/protocol/constants.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import { SubsystemHost } from "./subsystem-host.ts";
import { type ExportLogEntry, exportNvmeFunction, type FunctionExport } from "./vfio-user-export.ts";

// Guest RAM: one 2 MiB memfd. [0, 1 MiB) is mapped with its fd (queues, PRP lists); [1 MiB, 2 MiB)
// is mapped WITHOUT an fd, so the device reaches it only through DMA_READ / DMA_WRITE messages.
const RAM_BYTES = 2 << 20;
const DIRECT_BYTES = 1 << 20;
const REMOTE = DIRECT_BYTES;
const REMOTE_BYTES = RAM_BYTES - DIRECT_BYTES;
const LBA_BYTES = 512;
const ENTRIES = 16;
const ASQ = 0x10000;
const ACQ = 0x11000;
const IOSQ = 0x20000;
const IOCQ = 0x21000;
const PRP_LIST = 0x30000;

async function until(what: string, predicate: () => boolean, deadlineMs = 3000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!predicate()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Queue {
  sq: number;
  cq: number;
  tail: number;
  head: number;
  phase: number;
}

/** The guest: SQEs in its RAM, doorbells rung by REGION_WRITE, CQEs found by polling its RAM. */
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

  bytes(at: number, length: number): Uint8Array {
    return new Uint8Array(this.ram.buffer, at, length);
  }

  async writeReg(offset: number, value: number | bigint): Promise<void> {
    const b = new Uint8Array(typeof value === "bigint" ? 8 : 4);
    const v = new DataView(b.buffer);
    if (typeof value === "bigint") v.setBigUint64(0, value, true);
    else v.setUint32(0, value, true);
    await this.client.regionWrite(RegionIndex.BAR0, offset, b);
  }

  /** Maps RAM: the low part with the memfd, the high part fd-less (served from `remote` if given). */
  async mapRam(remote: "buffer" | "handlers"): Promise<void> {
    await this.client.dmaMap({ iova: 0, sizeBytes: DIRECT_BYTES, fd: this.ram.fd });
    const m = { iova: REMOTE, sizeBytes: REMOTE_BYTES };
    await this.client.dmaMap(remote === "buffer" ? { ...m, buffer: this.bytes(REMOTE, REMOTE_BYTES) } : m);
  }

  /** Writes one SQE, rings its doorbell by REGION_WRITE and resolves with the CQE. */
  async submit(qid: number, f: Omit<SqeFields, "cid">): Promise<CqeFields> {
    const q = this.queues.get(qid)!;
    const cid = this.cid++ & 0xffff;
    encodeSqe({ ...f, cid }, this.view, q.sq + q.tail * 64);
    q.tail = (q.tail + 1) % ENTRIES;
    await this.writeReg(0x1000 + qid * 8, q.tail);
    return this.reap(qid, cid);
  }

  async reap(qid: number, cid: number): Promise<CqeFields> {
    const q = this.queues.get(qid)!;
    const at = q.cq + q.head * 16;
    await until(`CQE of cid ${cid}`, () => (this.view.getUint16(at + 14, true) & 1) === q.phase);
    const cqe = decodeCqe(this.view, at);
    assert.equal(cqe.cid, cid);
    q.head = (q.head + 1) % ENTRIES;
    if (q.head === 0) q.phase ^= 1;
    if (this.client.isOpen) await this.writeReg(0x1000 + qid * 8 + 4, q.head);
    return cqe;
  }
}

function pattern(n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 13 + seed) & 0xff);
}

function ok(cqe: CqeFields): void {
  assert.equal(cqe.status, Status.Success, statusName(cqe.status));
}

describe("vfio-user export: device DMA into guest memory mapped without an fd (DMA_READ / DMA_WRITE)", () => {
  const dir = mkdtempSync(join(tmpdir(), "nvmig-remote-dma-"));
  const path = join(dir, "pf.sock");
  const store = createMemoryBlockStore({ lbaBytes: LBA_BYTES, lbaCount: 4096 });
  let sub: SubsystemHost;
  let exp: FunctionExport;
  let ram: GuestMemoryFd;
  let guest: Guest;
  const logs: ExportLogEntry[] = [];
  const stored = (slba: number, n: number) => {
    const b = new Uint8Array(n);
    store.read(slba * LBA_BYTES, b);
    return b;
  };
  const connect = (o: VfioUserClientOptions = {}) => VfioUserClient.connect(SocketTransport.connect(path), o);

  before(() => {
    sub = new SubsystemHost({ namespaces: [{ nsid: 1, store }], secondaryCount: 1 });
    exp = exportNvmeFunction(sub.pf, { path, label: "pf", onLog: (e) => logs.push(e) });
    ram = GuestMemoryFd.create("guest-ram-remote-dma", RAM_BYTES);
  });

  after(() => {
    guest?.client.close();
    exp?.close();
    ram?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("writes from and reads into the fd-less part (client serves from its registered buffer), dirty-logged", async () => {
    guest = new Guest(await connect(), ram);
    await guest.mapRam("buffer");
    assert.deepEqual(
      sub.pf.dma.remoteRanges().map((r) => [r.iova, r.lengthBytes, r.writable]),
      [[REMOTE, REMOTE_BYTES, true]],
    );
    await guest.writeReg(Reg.AQA, AQA.make(ENTRIES - 1, ENTRIES - 1));
    await guest.writeReg(Reg.ASQ, BigInt(ASQ));
    await guest.writeReg(Reg.ACQ, BigInt(ACQ));
    await guest.writeReg(Reg.CC, CC.make({ en: true }));
    await until("CSTS.RDY", () => sub.pf.controller.ready);
    guest.queues.set(0, { sq: ASQ, cq: ACQ, tail: 0, head: 0, phase: 1 });
    ok(
      await guest.submit(0, {
        opc: AdminOpcode.CreateIoCompletionQueue,
        prp1: IOCQ,
        cdw10: ((ENTRIES - 1) << 16) | 1,
        cdw11: 1,
      }),
    );
    ok(
      await guest.submit(0, {
        opc: AdminOpcode.CreateIoSubmissionQueue,
        prp1: IOSQ,
        cdw10: ((ENTRIES - 1) << 16) | 1,
        cdw11: (1 << 16) | 1,
      }),
    );
    guest.queues.set(1, { sq: IOSQ, cq: IOCQ, tail: 0, head: 0, phase: 1 });
    // A queue in the fd-less part is still refused.
    const bad = await guest.submit(0, {
      opc: AdminOpcode.CreateIoCompletionQueue,
      prp1: REMOTE,
      cdw10: ((ENTRIES - 1) << 16) | 2,
      cdw11: 1,
    });
    assert.notEqual(bad.status, Status.Success);

    const data = pattern(8192, 5);
    guest.bytes(REMOTE + 0x1000, data.length).set(data);
    const nlb = data.length / LBA_BYTES;
    ok(
      await guest.submit(1, {
        opc: NvmOpcode.Write,
        nsid: 1,
        prp1: REMOTE + 0x1000,
        prp2: REMOTE + 0x2000,
        cdw10: 64,
        cdw12: nlb - 1,
      }),
    );
    assert.deepEqual(stored(64, data.length), data, "the data is in the store when the Write completes");

    const log: [number, number][] = [];
    const logger = { logWrite: (iova: number, n: number) => log.push([iova, n]) };
    sub.pf.dma.attachLogger(logger);
    // PRP1 in the fd-less part, PRP2 in the direct part: one DMA_WRITE message and one memory copy.
    const direct = 0x40000;
    ok(
      await guest.submit(1, {
        opc: NvmOpcode.Read,
        nsid: 1,
        prp1: REMOTE + 0x8000,
        prp2: direct,
        cdw10: 64,
        cdw12: nlb - 1,
      }),
    );
    sub.pf.dma.detachLogger(logger);
    assert.deepEqual(guest.bytes(REMOTE + 0x8000, 4096), data.subarray(0, 4096));
    assert.deepEqual(guest.bytes(direct, 4096), data.subarray(4096));
    assert.ok(
      log.some(([iova, n]) => iova === REMOTE + 0x8000 && n === 4096),
      "remote write dirty-logged",
    );
    assert.ok(
      log.some(([iova, n]) => iova === direct && n === 4096),
      "direct write dirty-logged",
    );

    // Compare against the fd-less copy: equal, then one bit off.
    ok(
      await guest.submit(1, {
        opc: NvmOpcode.Compare,
        nsid: 1,
        prp1: REMOTE + 0x1000,
        prp2: REMOTE + 0x2000,
        cdw10: 64,
        cdw12: nlb - 1,
      }),
    );
    guest.bytes(REMOTE + 0x1000, 1)[0]! ^= 0x80;
    const cmp = await guest.submit(1, {
      opc: NvmOpcode.Compare,
      nsid: 1,
      prp1: REMOTE + 0x1000,
      prp2: REMOTE + 0x2000,
      cdw10: 64,
      cdw12: nlb - 1,
    });
    assert.equal(cmp.status, Status.CompareFailure, statusName(cmp.status));
  });

  it("splits transfers over the client's max_data_xfer_size, and an error reply ends the command with Data Transfer Error", async () => {
    guest.client.close();
    await until("detach", () => logs.filter((l) => l.event.name === "client-state-dropped").length === 1);
    const seen: string[] = [];
    const mem = guest.bytes(REMOTE, REMOTE_BYTES);
    const FAULTY = REMOTE + 0x60000;
    guest.client = await connect({
      maxDataXferBytes: 4096,
      onDmaRead: (iova, n) => {
        seen.push(`read ${(iova - REMOTE).toString(16)}+${n.toString(16)}`);
        return iova === FAULTY ? Errno.EFAULT : mem.slice(iova - REMOTE, iova - REMOTE + n);
      },
      onDmaWrite: (iova, d) => {
        seen.push(`write ${(iova - REMOTE).toString(16)}+${d.byteLength.toString(16)}`);
        if (iova === FAULTY) return Errno.EIO;
        mem.set(d, iova - REMOTE);
        return 0;
      },
    });
    await guest.mapRam("handlers");
    // 16 KiB from a contiguous fd-less buffer described by a PRP list in direct memory.
    const data = pattern(16384, 11);
    mem.set(data, 0x10000);
    for (let i = 0; i < 3; i++)
      guest.view.setBigUint64(PRP_LIST + i * 8, BigInt(REMOTE + 0x11000 + i * 0x1000), true);
    ok(
      await guest.submit(1, {
        opc: NvmOpcode.Write,
        nsid: 1,
        prp1: REMOTE + 0x10000,
        prp2: PRP_LIST,
        cdw10: 200,
        cdw12: 31,
      }),
    );
    assert.deepEqual(stored(200, data.length), data);
    assert.deepEqual(seen, ["read 10000+1000", "read 11000+1000", "read 12000+1000", "read 13000+1000"]);
    seen.length = 0;
    for (let i = 0; i < 3; i++)
      guest.view.setBigUint64(PRP_LIST + i * 8, BigInt(REMOTE + 0x21000 + i * 0x1000), true);
    ok(
      await guest.submit(1, {
        opc: NvmOpcode.Read,
        nsid: 1,
        prp1: REMOTE + 0x20000,
        prp2: PRP_LIST,
        cdw10: 200,
        cdw12: 31,
      }),
    );
    assert.deepEqual(mem.subarray(0x20000, 0x24000), data);
    assert.deepEqual(seen, ["write 20000+1000", "write 21000+1000", "write 22000+1000", "write 23000+1000"]);

    const before = stored(300, 512);
    const w = await guest.submit(1, { opc: NvmOpcode.Write, nsid: 1, prp1: FAULTY, cdw10: 300, cdw12: 0 });
    assert.equal(w.status, Status.DataTransferError, statusName(w.status));
    assert.deepEqual(stored(300, 512), before, "a failed Write changes nothing");
    const r = await guest.submit(1, { opc: NvmOpcode.Read, nsid: 1, prp1: FAULTY, cdw10: 300, cdw12: 0 });
    assert.equal(r.status, Status.DataTransferError, statusName(r.status));
  });

  it("a client that disconnects mid-transfer gets Data Transfer Error; the server serves the next client", async () => {
    const STUCK = REMOTE + 0x70000;
    const client = guest.client;
    let asked = false;
    // A client that hangs up instead of answering this DMA_READ.
    client.close();
    guest.client = await connect({
      onDmaRead: (iova) => {
        asked = iova === STUCK;
        guest.client.close();
        return new Promise<never>(() => {});
      },
    });
    await guest.mapRam("handlers");
    const q = guest.queues.get(1)!;
    const cid = guest.cid++;
    encodeSqe(
      { opc: NvmOpcode.Write, nsid: 1, prp1: STUCK, cdw10: 400, cdw12: 0, cid },
      guest.view,
      q.sq + q.tail * 64,
    );
    q.tail = (q.tail + 1) % ENTRIES;
    const before = stored(400, 512);
    await guest.writeReg(0x1000 + 8, q.tail);
    const w = await guest.reap(1, cid);
    assert.ok(asked, "the device asked for the data by DMA_READ");
    assert.equal(w.status, Status.DataTransferError, statusName(w.status));
    assert.deepEqual(stored(400, 512), before);

    guest.client = await connect();
    await guest.mapRam("buffer");
    const data = pattern(512, 99);
    guest.bytes(REMOTE + 0x50000, 512).set(data);
    ok(
      await guest.submit(1, { opc: NvmOpcode.Write, nsid: 1, prp1: REMOTE + 0x50000, cdw10: 400, cdw12: 0 }),
    );
    ok(await guest.submit(1, { opc: NvmOpcode.Read, nsid: 1, prp1: REMOTE + 0x51000, cdw10: 400, cdw12: 0 }));
    assert.deepEqual(guest.bytes(REMOTE + 0x51000, 512), data);
    await guest.client.dmaUnmap(REMOTE, REMOTE_BYTES);
    assert.equal(sub.pf.dma.hasRemote, false, "DMA_UNMAP drops the remote range");
    const r = await guest.submit(1, {
      opc: NvmOpcode.Read,
      nsid: 1,
      prp1: REMOTE + 0x51000,
      cdw10: 400,
      cdw12: 0,
    });
    assert.equal(r.status, Status.DataTransferError);
  });
});
