/**
 * Test support (not API): a minimal host that drives a real `NvmeController` through guest memory —
 * admin queue setup, raw SQE submission, CQE reaping — so each command's handler can be tested at the
 * register / queue level without the full guest driver.
 */
import { Dma } from "../memory/dma.ts";
import { AQA, CC, CSTS, cqHeadDoorbell, Reg, sqTailDoorbell } from "../nvme/registers.ts";
import { type CqeFields, decodeCqe, encodeSqe, type SqeFields } from "../nvme/sqe.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { NvmeController } from "./controller.ts";
import { Subsystem, type SubsystemOptions } from "./subsystem.ts";

export const TEST_RAM_BYTES = 16 << 20;

interface TestQueue {
  sqBase: number;
  cqBase: number;
  size: number;
  tail: number;
  head: number;
  phase: number;
}

export class TestHost {
  readonly ram: Uint8Array;
  readonly view: DataView;
  dma = new Dma();
  readonly subsystem: Subsystem;
  controller: NvmeController;
  readonly interrupts: number[] = [];
  private nextFree = 0x100000;
  private cid = 0;
  private readonly queues = new Map<number, TestQueue>();

  constructor(opts?: {
    subsystem?: Subsystem;
    controller?: NvmeController;
    ramBytes?: number;
    subsystemOptions?: Partial<SubsystemOptions>;
  }) {
    this.ram = new Uint8Array(opts?.ramBytes ?? TEST_RAM_BYTES);
    this.view = new DataView(this.ram.buffer);
    this.subsystem =
      opts?.subsystem ??
      new Subsystem({
        namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount: 1 << 16 }) }],
        ...opts?.subsystemOptions,
      });
    if (opts?.controller !== undefined) {
      this.controller = opts.controller;
      this.dma = this.controller.dma;
    } else {
      this.controller = new NvmeController({
        cntlid: 0,
        primary: true,
        subsystem: this.subsystem,
        dma: this.dma,
        maxIoQueuePairs: 16,
        msixVectors: 17,
      });
      this.subsystem.addController(this.controller);
      for (const nsid of this.subsystem.namespaces.keys()) this.controller.attachedNamespaces.add(nsid);
    }
    this.dma.map(0, this.ram);
    this.controller.setInterruptSink((v) => this.interrupts.push(v));
  }

  /** Allocates zeroed, page-aligned guest memory. */
  alloc(bytes: number): number {
    const at = this.nextFree;
    this.nextFree += Math.ceil(bytes / 4096) * 4096;
    if (this.nextFree > this.ram.byteLength) throw new Error("test RAM exhausted");
    this.ram.fill(0, at, at + bytes);
    return at;
  }

  /** Programs AQA/ASQ/ACQ and enables the controller. Returns CSTS. */
  enable(entries = 32, ccOverride?: number): number {
    const c = this.controller;
    const sq = this.alloc(entries * 64);
    const cq = this.alloc(entries * 16);
    c.write32(Reg.AQA, AQA.make(entries - 1, entries - 1));
    c.write64(Reg.ASQ, BigInt(sq));
    c.write64(Reg.ACQ, BigInt(cq));
    c.write32(Reg.CC, ccOverride ?? CC.make({ en: true }));
    this.queues.set(0, { sqBase: sq, cqBase: cq, size: entries, tail: 0, head: 0, phase: 1 });
    return c.read32(Reg.CSTS);
  }

  /**
   * Moves this guest to another controller (as after a migration: same guest memory, new device).
   * The guest's queue bookkeeping carries on unchanged.
   */
  retarget(controller: NvmeController): void {
    this.controller = controller;
    this.dma = controller.dma;
    if (!this.dma.ranges().some((r) => r.bytes === this.ram)) this.dma.map(0, this.ram);
    controller.setInterruptSink((v) => this.interrupts.push(v));
  }

  get ready(): boolean {
    return (this.controller.read32(Reg.CSTS) & CSTS.RDY) !== 0;
  }

  /** Places an SQE on queue `qid` and rings its doorbell. Returns the CID used. */
  submit(qid: number, f: Omit<SqeFields, "cid"> & { cid?: number }): number {
    const q = this.queues.get(qid);
    if (q === undefined) throw new Error(`no queue ${qid}`);
    const cid = f.cid ?? this.cid++ & 0xffff;
    encodeSqe({ ...f, cid }, this.view, q.sqBase + q.tail * 64);
    q.tail = (q.tail + 1) % q.size;
    this.controller.write32(sqTailDoorbell(qid, 0), q.tail);
    return cid;
  }

  /** Runs one processing pass now. */
  pass(): void {
    this.controller.runPass();
  }

  /** Reaps every new CQE of queue `qid` and rings the CQ head doorbell. */
  reap(qid: number): CqeFields[] {
    const q = this.queues.get(qid)!;
    const out: CqeFields[] = [];
    for (;;) {
      const e = decodeCqe(this.view, q.cqBase + q.head * 16);
      if (e.phase !== q.phase) break;
      out.push(e);
      q.head++;
      if (q.head === q.size) {
        q.head = 0;
        q.phase ^= 1;
      }
    }
    if (out.length > 0) this.controller.write32(cqHeadDoorbell(qid, 0), q.head);
    return out;
  }

  /** Submits one command, runs a pass (plus microtasks for deferred completions), returns its CQE. */
  async command(qid: number, f: Omit<SqeFields, "cid">): Promise<CqeFields> {
    const cid = this.submit(qid, f);
    this.pass();
    for (let i = 0; i < 50; i++) {
      const got = this.reap(qid);
      const mine = got.find((e) => e.cid === cid);
      if (mine !== undefined) return mine;
      await new Promise((r) => setImmediate(r));
      this.pass();
    }
    throw new Error(`no completion for cid ${cid} on queue ${qid}`);
  }

  admin(f: Omit<SqeFields, "cid">): Promise<CqeFields> {
    return this.command(0, f);
  }

  /** Creates I/O CQ + SQ `qid` of `entries` entries through admin commands. */
  async createIoQueuePair(qid: number, entries = 64, iv = qid): Promise<void> {
    const cq = this.alloc(entries * 16);
    const sq = this.alloc(entries * 64);
    const a = await this.admin({
      opc: 0x05,
      prp1: cq,
      cdw10: qid | ((entries - 1) << 16),
      cdw11: 1 | 2 | (iv << 16),
    });
    if (a.status !== 0) throw new Error(`create cq status ${a.status.toString(16)}`);
    const b = await this.admin({
      opc: 0x01,
      prp1: sq,
      cdw10: qid | ((entries - 1) << 16),
      cdw11: 1 | (qid << 16),
    });
    if (b.status !== 0) throw new Error(`create sq status ${b.status.toString(16)}`);
    this.queues.set(qid, { sqBase: sq, cqBase: cq, size: entries, tail: 0, head: 0, phase: 1 });
  }
}
