/**
 * The host's own driver for the PF (the controlling function): brings the primary controller up
 * through its registers like any NVMe driver, in host memory of its own, and serves the software
 * doorbell (`AdminChannel`) and namespace block I/O (`BlockChannel`) that the variant drivers and the
 * control-plane agent use. Every call is a real SQE on the PF's queues.
 */
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { NvmOpcode } from "../nvme/opcodes.ts";
import type {
  AdminChannel,
  AdminCommand,
  AdminReply,
  BlockChannel,
  HostBuffer,
} from "../vfio/nvme/admin-channel.ts";
import { createGuestMemory, type GuestMemory } from "../vmm/guest-memory.ts";
import { InProcessPort } from "../vmm/in-process-port.ts";
import { GuestNvmeDriver } from "../vmm/nvme-driver.ts";
import { buildPrps, type PrpPair, prpListPagesFor } from "../vmm/prp-builder.ts";

/** NVMe Internal Error (SCT 0, SC 06h): a block command the driver could not queue. */
const INTERNAL_ERROR_STATUS = 0x0006;

export interface PfDriverOptions {
  /** Host memory the PF driver owns (queues, data buffers, UDMQs), bytes. Default 64 MiB, multiple of 4 KiB. */
  hostMemoryBytes?: number;
  /** I/O queue pairs for namespace data copies. Default 2. */
  ioQueues?: number;
}

export class PfHostDriver implements AdminChannel, BlockChannel {
  readonly memory: GuestMemory;
  readonly driver: GuestNvmeDriver;
  readonly port: InProcessPort;
  private nextIoQueue = 0;

  private constructor(
    readonly pf: NvmeFunction,
    opts: PfDriverOptions,
  ) {
    this.memory = createGuestMemory(opts.hostMemoryBytes ?? 64 << 20);
    this.port = new InProcessPort(pf, this.memory);
    this.driver = new GuestNvmeDriver(this.port, this.memory, {
      ioQueues: opts.ioQueues ?? 2,
      ioQueueEntries: 64,
      completionMode: "interrupt",
      asyncEventRequests: 1,
      maxTransferBytes: 512 * 1024,
    });
  }

  static async start(pf: NvmeFunction, opts: PfDriverOptions = {}): Promise<PfHostDriver> {
    const d = new PfHostDriver(pf, opts);
    await d.driver.init();
    return d;
  }

  /** Allocates host memory for a transfer plus its PRP list; returns the PRPs and a release function. */
  private buffer(lengthBytes: number): { gpa: number; prps: PrpPair; release: () => void } {
    const gpa = this.memory.allocBytes(Math.max(4, lengthBytes));
    const pages = Math.ceil(lengthBytes / 4096) + 1;
    const listPages = prpListPagesFor(pages);
    const listGpa = listPages > 0 ? this.memory.allocPages(listPages) : 0;
    const prps: PrpPair = { prp1: 0, prp2: 0 };
    buildPrps(this.memory, gpa, Math.max(4, lengthBytes), listGpa, listPages, prps);
    return {
      gpa,
      prps,
      release: () => {
        this.memory.free(gpa);
        if (listPages > 0) this.memory.free(listGpa);
      },
    };
  }

  hostBuffer(lengthBytes: number): HostBuffer {
    const pages = Math.max(1, Math.ceil(lengthBytes / 4096));
    const iova = this.memory.allocPages(pages);
    const bytes = this.memory.viewForWrite(iova, pages * 4096);
    bytes.fill(0);
    return { iova, bytes, release: () => this.memory.free(iova) };
  }

  async submit(cmd: AdminCommand): Promise<AdminReply> {
    const len = cmd.dataOut?.byteLength ?? cmd.dataInBytes ?? 0;
    const buf = len > 0 ? this.buffer(len) : undefined;
    try {
      if (buf !== undefined && cmd.dataOut !== undefined) this.memory.write(buf.gpa, cmd.dataOut);
      const pending = this.driver.adminCommand({
        opc: cmd.opc,
        nsid: cmd.nsid ?? 0,
        prp1: buf?.prps.prp1 ?? cmd.prp1 ?? 0,
        prp2: buf?.prps.prp2 ?? 0,
        cdw10: cmd.cdw10 ?? 0,
        cdw11: cmd.cdw11 ?? 0,
        cdw12: cmd.cdw12 ?? 0,
        cdw13: cmd.cdw13 ?? 0,
        cdw14: cmd.cdw14 ?? 0,
        cdw15: cmd.cdw15 ?? 0,
      });
      this.processNow();
      const r = await pending;
      const reply: AdminReply = { status: r.status, dw0: r.dw0 };
      if (r.status === 0 && buf !== undefined && cmd.dataInBytes !== undefined) {
        reply.data = this.memory.view(buf.gpa, cmd.dataInBytes).slice();
      }
      return reply;
    } finally {
      buf?.release();
    }
  }

  /**
   * The PF and this driver share the process: after ringing a doorbell the driver lets the PF run its
   * processing pass now, in this turn, and reaps its queues right away (as polled queues), instead
   * of waiting a turn of the event loop for the pass and another for the interrupt — during which
   * other functions' passes would run first. A command the PF completes later (e.g. a Suspend that
   * waits for fetched commands) still arrives by interrupt. Admin commands and namespace I/O alike.
   */
  private processNow(): void {
    this.pf.controller.runPass();
    this.driver.poll();
  }

  lbaBytes(nsid: number): number | undefined {
    return this.driver.namespaces.get(nsid)?.lbaBytes;
  }

  private qid(): number {
    const n = this.driver.ioQueueCount;
    this.nextIoQueue = (this.nextIoQueue % n) + 1;
    return this.nextIoQueue;
  }

  private io(opc: number, nsid: number, slba: number, nlb: number, prps: PrpPair): Promise<number> {
    const done = new Promise<number>((resolve) => {
      const cid = this.driver.submitIo(
        this.qid(),
        (v, at) => {
          v.setUint8(at, opc);
          v.setUint32(at + 4, nsid, true);
          v.setUint32(at + 24, prps.prp1 >>> 0, true);
          v.setUint32(at + 28, Math.floor(prps.prp1 / 2 ** 32), true);
          v.setUint32(at + 32, prps.prp2 >>> 0, true);
          v.setUint32(at + 36, Math.floor(prps.prp2 / 2 ** 32), true);
          v.setUint32(at + 40, slba >>> 0, true);
          v.setUint32(at + 44, Math.floor(slba / 2 ** 32), true);
          v.setUint32(at + 48, (nlb - 1) & 0xffff, true);
        },
        (status) => resolve(status),
      );
      // No free slot (cannot happen while every command completes in the caller's turn): fail it.
      if (cid < 0) resolve(INTERNAL_ERROR_STATUS);
    });
    this.processNow();
    return done;
  }

  async read(nsid: number, slba: number, nlb: number): Promise<{ status: number; data?: Uint8Array }> {
    const lbaBytes = this.lbaBytes(nsid);
    if (lbaBytes === undefined) return { status: 0x400b };
    const buf = this.buffer(nlb * lbaBytes);
    try {
      const status = await this.io(NvmOpcode.Read, nsid, slba, nlb, buf.prps);
      return status === 0 ? { status, data: this.memory.view(buf.gpa, nlb * lbaBytes).slice() } : { status };
    } finally {
      buf.release();
    }
  }

  async write(nsid: number, slba: number, data: Uint8Array): Promise<{ status: number }> {
    const lbaBytes = this.lbaBytes(nsid);
    if (lbaBytes === undefined) return { status: 0x400b };
    const nlb = data.byteLength / lbaBytes;
    const buf = this.buffer(data.byteLength);
    try {
      this.memory.write(buf.gpa, data);
      return { status: await this.io(NvmOpcode.Write, nsid, slba, nlb, buf.prps) };
    } finally {
      buf.release();
    }
  }

  async stop(): Promise<void> {
    await this.driver.shutdown();
    this.port.detach();
  }
}
