/**
 * The source agent's changed-LBA stream (StreamChangedLbaRanges) pumped into a saving session's change
 * logs in the background — the out-of-band counterpart of the variant driver's `UdmqReader`:
 *
 *   agent                                        this feed                      saving session
 *   UDMQ entries ──► batches ══ gRPC ══════════► record(slba, nlb) ───────────► LbaChangeLog per nsid
 *   ... Suspend: ESA 3 ──► last batch + end ════► end entry: untilEnd() resolves → STOP_COPY data
 *
 * Compatibility: a stream ends cleanly only after its end entry (ESA 2 "logging stopped" or ESA 3
 * "suspended"); an agent ending it any other way is treated as a broken stream.
 *
 * Logging ends only with that end entry; a stream that fails or ends without one is "broken": from
 * then on nothing tracks the changes, so every namespace block counts as changed — once when the break
 * is seen, and again after the suspend (`untilEnd`), which covers the writes made between the break and
 * the suspend. Slower, never wrong.
 */
import type { ControlClient } from "../../control/client.ts";
import type { LbaChangeLog } from "../../storage/lba-change-log.ts";
import type { ChangeFeed } from "../../vfio/nvme/function-ops.ts";

export class AgentChangeFeed implements ChangeFeed {
  private ended = false;
  private failure: unknown;
  private readonly done: Promise<void>;
  private endWaiters: (() => void)[] = [];
  private readonly abort = new AbortController();

  constructor(
    client: Pick<ControlClient, "streamChangedLbaRanges">,
    cntlid: number,
    private readonly logs: Map<number, LbaChangeLog>,
  ) {
    this.done = (async () => {
      let endEntry = false;
      try {
        for await (const batch of client.streamChangedLbaRanges(cntlid, { signal: this.abort.signal })) {
          for (const r of batch) {
            if (r.changeInfo === "all-changed") this.markAll();
            else if (r.changeInfo === "range-valid") this.logs.get(r.nsid)?.record(Number(r.slba), r.nlb + 1);
            if (r.entrySequence === "last-suspended" || r.entrySequence === "last-logging-stopped")
              endEntry = true;
          }
          if (endEntry) break;
        }
        if (!endEntry && !this.abort.signal.aborted) {
          this.failure = new Error(`changed-LBA stream of CNTLID ${cntlid} ended before the end of logging`);
        }
      } catch (e) {
        if (!this.abort.signal.aborted) this.failure = e;
      } finally {
        if (this.failure !== undefined) this.markAll();
        this.ended = true;
        for (const w of this.endWaiters) w();
        this.endWaiters = [];
      }
    })();
  }

  private markAll(): void {
    for (const l of this.logs.values()) l.markAll();
  }

  /** Every change is pumped into the logs as it arrives: nothing to do here. */
  async drain(): Promise<void> {}

  /** The stream failed or ended without an end entry (all namespace blocks were marked changed). */
  get broken(): boolean {
    return this.failure !== undefined;
  }

  /**
   * After the Suspend: resolves once every range up to the end entry (ESA 3) is in the logs. A broken
   * stream missed changes made since it broke, so every block is marked changed again (the source is
   * suspended: the full copy is exact).
   */
  async untilEnd(): Promise<void> {
    if (!this.ended) await new Promise<void>((r) => this.endWaiters.push(r));
    if (this.broken) this.markAll();
  }

  async close(): Promise<void> {
    this.abort.abort();
    await this.done;
  }
}
