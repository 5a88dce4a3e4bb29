/**
 * One user-data change logging session of a controlled function, over the PF driver's
 * `UdmqReader` (TP4159 Controller Data Queue + Track Send "Log User Data Changes"):
 *
 *   start ──► Controller Data Queue create (in PF host memory) + Track Send LACT 1
 *   drain ──► entries the controller posted → `ChangedLbaRange`s pending for the stream;
 *             the head advances with Set Features 21h
 *   stop  ──► Track Send LACT 0 (the controller posts ESA 2) → drain → queue deleted
 *   the controlled controller is suspended ──► the controller posts ESA 3 → drain → queue deleted
 *
 * The reader folds each entry into a per-namespace change log; the logs given to it here record each
 * call instead of a bitmap, so every posted range arrives as one `ChangedLbaRange` (exact SLBA / NLB,
 * in queue order). What that fold loses is restored from context, exactly for nvmig controllers:
 * the first range is the one the controller marked ESA 1 (first); the end entry is ESA 2 when this
 * session stopped logging and ESA 3 otherwise (the only other way logging ends); a queue-full entry
 * (ESA 7, LBACIR 1) becomes "all-changed" for every namespace and — because the reader restarts
 * logging — does not end the session. DLBA is not carried by the reader: `deallocated` is false.
 */
import type { ChangedLbaRange, EntrySequence } from "../../control/backend.ts";
import type { ControlError } from "../../control/errors.ts";
import { GenericStatus, statusCode } from "../../nvme/status.ts";
import { LbaChangeLog } from "../../storage/lba-change-log.ts";
import type { AdminChannel } from "../../vfio/nvme/admin-channel.ts";
import { UdmqError, UdmqReader } from "../../vfio/nvme/udmq-reader.ts";
import { asControlError } from "./device-errors.ts";

/** A change log that reports each recorded range instead of keeping a bitmap. */
class RangeRecorder extends LbaChangeLog {
  constructor(
    readonly nsid: number,
    lbaCount: number,
    private readonly sink: (r: Omit<ChangedLbaRange, "entrySequence">) => void,
  ) {
    super({ lbaCount, granularityLbas: 1 });
  }

  override record(slba: number, nlb: number): void {
    if (nlb <= 0) return;
    this.sink({
      nsid: this.nsid,
      slba: BigInt(slba),
      nlb: nlb - 1,
      changeInfo: "range-valid",
      deallocated: false,
    });
  }

  override markAll(): void {
    this.sink({ nsid: this.nsid, slba: 0n, nlb: 0, changeInfo: "all-changed", deallocated: false });
  }
}

export interface UserDataLogOptions {
  /** Entries of the User Data Migration Queue. Default 1024 (32 KiB), range 2..65536. */
  queueEntries?: number;
}

export class UserDataLogSession {
  /** Entries drained and not yet taken by a stream, in queue order. */
  private pending: ChangedLbaRange[] = [];
  private reader: UdmqReader | undefined;
  private seenFirst = false;
  private stopRequested = false;
  /** Why logging ended (the last entry), once it did. */
  end: Extract<EntrySequence, "last-logging-stopped" | "last-suspended"> | undefined;
  /** A failure while draining, reported to the stream. */
  failure: ControlError | undefined;
  /** A stream is reading this session. */
  streaming = false;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(readonly cntlid: number) {}

  /** Creates the queue and starts logging the changes of `cntlid` to `namespaces`. */
  static async start(
    channel: AdminChannel,
    cntlid: number,
    namespaces: readonly { nsid: number; sizeBlocks: bigint }[],
    options: UserDataLogOptions = {},
  ): Promise<UserDataLogSession> {
    const s = new UserDataLogSession(cntlid);
    const logs = new Map<number, LbaChangeLog>();
    for (const ns of namespaces) {
      logs.set(ns.nsid, new RangeRecorder(ns.nsid, Number(ns.sizeBlocks), (r) => s.push(r)));
    }
    const reader = new UdmqReader(channel, cntlid, logs, options.queueEntries ?? 1024);
    try {
      await reader.start();
    } catch (e) {
      await reader.close(false).catch(() => {});
      throw asControlError(e, `start user-data logging (CNTLID ${cntlid})`);
    }
    s.reader = reader;
    return s;
  }

  private push(r: Omit<ChangedLbaRange, "entrySequence">): void {
    const entrySequence: EntrySequence = this.seenFirst ? "none" : "first";
    this.seenFirst = true;
    this.pending.push({ ...r, entrySequence });
  }

  /** Runs `op` after every earlier session operation (the reader is not re-entrant). */
  private serial<T>(op: () => Promise<T>): Promise<T> {
    const next = this.chain.then(op, op);
    this.chain = next.catch(() => {});
    return next;
  }

  /** Logging is on in the device (the queue exists and no end entry was seen). */
  get active(): boolean {
    return this.reader !== undefined;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Takes every pending entry. */
  take(): ChangedLbaRange[] {
    const out = this.pending;
    this.pending = [];
    return out;
  }

  /**
   * Consumes posted entries. After a Suspend with DUDMQ the controller has deleted the queue once it
   * posted ESA 3, so the head update after that last entry is refused (Invalid Controller Data Queue):
   * expected then, a failure otherwise.
   */
  drain(): Promise<void> {
    return this.serial(() => this.drainNow());
  }

  private async drainNow(): Promise<void> {
    const reader = this.reader;
    if (reader === undefined) return;
    try {
      await reader.drain();
    } catch (e) {
      const expected =
        reader.ended &&
        e instanceof UdmqError &&
        statusCode(e.status) === GenericStatus.InvalidControllerDataQueue;
      if (!expected) {
        this.failure = asControlError(e, `drain user-data migration queue (CNTLID ${this.cntlid})`);
        throw this.failure;
      }
    }
    if (reader.ended) await this.finish(reader);
  }

  private async finish(reader: UdmqReader): Promise<void> {
    this.reader = undefined;
    this.end = this.stopRequested ? "last-logging-stopped" : "last-suspended";
    this.pending.push({
      nsid: 0,
      slba: 0n,
      nlb: 0,
      entrySequence: this.end,
      changeInfo: "no-range",
      deallocated: false,
    });
    // Logging is over: delete the queue (a no-op status if the controller already did) and free it.
    await reader.close(false).catch(() => {});
  }

  /** Stops logging (the controller posts ESA 2), drains the rest and deletes the queue. */
  stop(): Promise<void> {
    return this.serial(async () => {
      await this.drainNow();
      const reader = this.reader;
      if (reader === undefined) return; // already ended (e.g. by a suspend)
      this.stopRequested = true;
      try {
        await reader.close(true);
      } catch (e) {
        this.reader = undefined;
        this.failure = asControlError(e, `stop user-data logging (CNTLID ${this.cntlid})`);
        throw this.failure;
      }
      // The controller posted ESA 2 (drained by close); the session ends as stopped either way.
      await this.finish(reader);
    });
  }

  /** Releases the queue without waiting for anything (agent shutdown). */
  async abandon(): Promise<void> {
    await this.stop().catch(() => {});
  }
}
