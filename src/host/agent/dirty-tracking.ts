/**
 * Host-memory dirty tracking of one controlled function, over the PF driver's `MemoryTracking`
 * (TP4159 Track Send "Track Memory Changes" to start / stop, Track Receive to read-and-clear the
 * device's per-granule bitmaps). `MemoryTracking` reports failures as errno values; the channel it is
 * given here remembers the status of the last failed command so the error names it.
 */
import type { MemoryRange } from "../../control/backend.ts";
import { ControlError } from "../../control/errors.ts";
import type { AdminChannel, AdminCommand, AdminReply, HostBuffer } from "../../vfio/nvme/admin-channel.ts";
import { MemoryTracking } from "../../vfio/nvme/memory-tracking.ts";
import { Errno } from "../../vfio/states.ts";
import { deviceError } from "./device-errors.ts";

/** An AdminChannel that remembers the last command that failed. */
class FailureRecordingChannel implements AdminChannel {
  lastFailure: { opc: number; status: number } | undefined;

  constructor(private readonly inner: AdminChannel) {}

  async submit(cmd: AdminCommand): Promise<AdminReply> {
    const r = await this.inner.submit(cmd);
    if (r.status !== 0) this.lastFailure = { opc: cmd.opc, status: r.status };
    return r;
  }

  hostBuffer(lengthBytes: number): HostBuffer {
    return this.inner.hostBuffer(lengthBytes);
  }

  /** The error for a call that failed with `errno`; consumes the recorded failure. */
  failure(what: string, errno: number): ControlError {
    const f = this.lastFailure;
    this.lastFailure = undefined;
    if (f !== undefined) return deviceError(what, f.status);
    return new ControlError("internal", `${what}: failed with errno ${errno} and no command status`);
  }
}

export class DirtyTracking {
  private constructor(
    readonly cntlid: number,
    private readonly channel: FailureRecordingChannel,
    private readonly tracking: MemoryTracking,
    /** Granule the device tracks at, bytes. */
    readonly pageSizeBytes: bigint,
  ) {}

  /** Starts tracking the DMA writes of `cntlid` to `ranges` at (about) `pageSizeBytes` granules. */
  static async start(
    inner: AdminChannel,
    cntlid: number,
    ranges: readonly MemoryRange[],
    pageSizeBytes: bigint,
  ): Promise<DirtyTracking> {
    const channel = new FailureRecordingChannel(inner);
    const tracking = new MemoryTracking(channel, cntlid);
    const r = await tracking.start(
      ranges.map((x) => ({ iova: x.iova, length: x.lengthBytes })),
      pageSizeBytes,
    );
    if ("errno" in r)
      throw channel.failure(`Track Send Track Memory Changes start (CNTLID ${cntlid})`, r.errno);
    return new DirtyTracking(cntlid, channel, tracking, r.pageSize);
  }

  /** Read-and-clear bitmap of [iova, iova + lengthBytes): ceil(pages / 8) bytes, bit i LSB first. */
  async report(iova: bigint, lengthBytes: bigint, pageSizeBytes: bigint): Promise<Uint8Array> {
    const r = await this.tracking.reportAndClear(iova, lengthBytes, pageSizeBytes);
    if (!(r instanceof Uint8Array)) {
      if (r.errno === Errno.EINVAL) {
        throw new ControlError(
          "failed-precondition",
          `dirty tracking of CNTLID ${this.cntlid} is not started`,
        );
      }
      throw this.channel.failure(`Track Receive (CNTLID ${this.cntlid})`, r.errno);
    }
    const pages = Number(lengthBytes / pageSizeBytes);
    return r.subarray(0, Math.ceil(pages / 8));
  }

  /** Stops tracking (Track Send TACT 0). */
  async stop(): Promise<void> {
    await this.tracking.stop();
  }
}
