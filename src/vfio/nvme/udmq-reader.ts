/**
 * Host side of a TP4159 User Data Migration Queue: creates it on the controlling function for one
 * controlled CNTLID, starts / stops logging, and consumes its 32-byte entries CQ-style (phase tag),
 * advancing the head with Set Features 21h. Changed ranges go into per-namespace `LbaChangeLog`s;
 * "all changed" (LBACIR 1, or ESA 7 queue full) marks whole namespaces.
 */
import {
  decodeUserDataMigrationQueueEntry,
  Esa,
  encodeControllerDataQueue,
  Lbacir,
  UDMQ_ENTRY_BYTES,
  UDMQ_ENTRY_DWORDS,
} from "../../nvme/controller-data-queue.ts";
import { encodeSetControllerDataQueue } from "../../nvme/features.ts";
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { Status, statusCode, statusCodeType, statusName } from "../../nvme/status.ts";

import { encodeTrackSend } from "../../nvme/track-commands.ts";
import type { LbaChangeLog } from "../../storage/lba-change-log.ts";
import type { AdminChannel, HostBuffer } from "./admin-channel.ts";

export class UdmqError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "UdmqError";
  }
}

export class UdmqReader {
  private buf: HostBuffer | undefined;
  private cdqid = 0;
  private head = 0;
  private phase = 1;
  /** The last entry seen said logging ended (ESA 2, 3 or 7). */
  ended = false;
  /** Entries consumed so far. */
  entriesConsumed = 0;

  constructor(
    private readonly channel: AdminChannel,
    private readonly cntlid: number,
    private readonly logs: Map<number, LbaChangeLog>,
    /** Entries in the queue. Default 4096 (128 KiB), range 2..65536. */
    private readonly entries = 4096,
  ) {}

  private async admin(what: string, cmd: Parameters<AdminChannel["submit"]>[0]): Promise<number> {
    const r = await this.channel.submit(cmd);
    if (r.status !== 0) throw new UdmqError(`${what}: ${statusName(r.status)}`, r.status);
    return r.dw0;
  }

  /** Creates the queue and starts logging. */
  async start(): Promise<void> {
    this.buf = this.channel.hostBuffer(this.entries * UDMQ_ENTRY_BYTES);
    const dw0 = await this.admin("create UDMQ", {
      opc: AdminOpcode.ControllerDataQueue,
      ...encodeControllerDataQueue({
        sel: 0,
        qt: 0,
        pc: true,
        cqs: this.cntlid,
        cdqsize: this.entries * UDMQ_ENTRY_DWORDS,
      }),
      prp1: this.buf.iova,
    });
    this.cdqid = dw0 & 0xffff;
    await this.admin("start logging", {
      opc: AdminOpcode.TrackSend,
      ...encodeTrackSend({ sel: 0, lact: 1, cdqid: this.cdqid }),
    });
  }

  /**
   * Consumes every posted entry into the change logs and advances the controller's head.
   * After a queue-full entry, logging is restarted (the whole namespaces are already marked).
   */
  async drain(): Promise<number> {
    const b = this.buf;
    if (b === undefined) return 0;
    let n = 0;
    let restart = false;
    for (;;) {
      const at = this.head * UDMQ_ENTRY_BYTES;
      const e = decodeUserDataMigrationQueueEntry(b.bytes.subarray(at, at + UDMQ_ENTRY_BYTES));
      if (e.phase !== this.phase) break;
      n++;
      if (e.lbacir === Lbacir.RangeValid) this.logs.get(e.nsid)?.record(e.slba, e.nlb + 1);
      else if (e.lbacir === Lbacir.AllChanged) for (const log of this.logs.values()) log.markAll();
      if (e.esa === Esa.LastQueueFull) restart = true;
      if (
        e.esa === Esa.LastLoggingStopped ||
        e.esa === Esa.LastControllerSuspended ||
        e.esa === Esa.LastQueueFull
      )
        this.ended = true;
      this.head++;
      if (this.head === this.entries) {
        this.head = 0;
        this.phase ^= 1;
      }
    }
    this.entriesConsumed += n;
    if (n > 0)
      await this.admin("advance UDMQ head", {
        opc: AdminOpcode.SetFeatures,
        ...encodeSetControllerDataQueue({ cdqid: this.cdqid, etpt: false, hp: this.head, tpt: 0 }),
      });
    if (restart) {
      const r = await this.channel.submit({
        opc: AdminOpcode.TrackSend,
        ...encodeTrackSend({ sel: 0, lact: 1, cdqid: this.cdqid }),
      });
      // Suspended meanwhile (the stop-copy drain): nothing can change any more and the whole
      // namespaces are already marked, so the log simply stays ended.
      const suspended = Status.ControllerSuspended;
      if (
        statusCodeType(r.status) === statusCodeType(suspended) &&
        statusCode(r.status) === statusCode(suspended)
      )
        return n;
      if (r.status !== 0) throw new UdmqError(`restart logging: ${statusName(r.status)}`, r.status);
      this.ended = false;
    }
    return n;
  }

  /** Stops logging (if still on), drains, deletes the queue and frees its memory. */
  async close(stopLogging: boolean): Promise<void> {
    if (this.buf === undefined) return;
    try {
      if (stopLogging && !this.ended)
        await this.admin("stop logging", {
          opc: AdminOpcode.TrackSend,
          ...encodeTrackSend({ sel: 0, lact: 0, cdqid: this.cdqid }),
        });
      await this.drain();
      await this.channel.submit({
        opc: AdminOpcode.ControllerDataQueue,
        ...encodeControllerDataQueue({ sel: 1, cdqid: this.cdqid }),
      });
    } finally {
      this.buf.release();
      this.buf = undefined;
    }
  }
}
