/**
 * The agent's leases: a `LeaseTable` swept by an unref'd timer armed at the next expiry (every table
 * operation sweeps too), plus the rule of what a lease's expiry undoes. An operation done under a
 * lease leaves a mark naming what to do should the lease expire before the holder finishes:
 *
 *   Suspend under the lease              → mark "resume": the function goes back to running (a source
 *                                          whose orchestrator died keeps serving its VM)
 *   Set Controller State under the lease → mark "reset": the function is reset (a destination must
 *                                          never run a state its orchestrator did not resume — the VM
 *                                          would run on both hosts)
 *   Resume / Reset / Release             → mark cleared
 *
 * `onExpired(lease, action)` is called synchronously from the sweep, with the mark's action if the
 * mark belongs to that lease; the caller schedules the device work.
 */
import type { LeaseInfo } from "../../control/backend.ts";
import { ControlError } from "../../control/errors.ts";
import { LeaseTable, type LeaseTableOptions } from "../../control/lease-table.ts";

export type ExpiryAction = "resume" | "reset";

/** Lease durations, ms (see `LeaseTableOptions`): defaults 30 000 / 1 000 / 600 000. */
export type LeaseDurations = Pick<LeaseTableOptions, "defaultLeaseMs" | "minLeaseMs" | "maxLeaseMs">;

const MAX_TIMER_MS = 2 ** 31 - 1;

export class LeaseKeeper {
  readonly table: LeaseTable;
  private readonly marks = new Map<number, { leaseId: string; action: ExpiryAction }>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    durations: LeaseDurations,
    private readonly onExpired: (lease: LeaseInfo, action: ExpiryAction | undefined) => void,
  ) {
    this.table = new LeaseTable({ ...durations, onExpired: (lease) => this.expired(lease) });
  }

  private expired(lease: LeaseInfo): void {
    const mark = this.marks.get(lease.cntlid);
    const action = mark?.leaseId === lease.leaseId ? mark.action : undefined;
    if (action !== undefined) this.marks.delete(lease.cntlid);
    this.onExpired(lease, action);
  }

  /** Re-arms the sweep timer at the earliest expiry. */
  private arm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    const next = this.table.nextExpiryAtMs();
    if (next === undefined) return;
    const delayMs = Math.min(MAX_TIMER_MS, Math.max(0, next - Date.now()) + 1);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.table.sweep();
      this.arm();
    }, delayMs);
    this.timer.unref();
  }

  get(cntlid: number): LeaseInfo | undefined {
    const lease = this.table.get(cntlid);
    this.arm();
    return lease;
  }

  acquire(params: { cntlid: number; holder: string; leaseMs: number; description: string }): LeaseInfo {
    try {
      return this.table.acquire(params);
    } finally {
      this.arm();
    }
  }

  renew(params: { cntlid: number; leaseId: string; holder: string; leaseMs: number }): LeaseInfo {
    try {
      return this.table.renew(params);
    } finally {
      this.arm();
    }
  }

  release(params: { cntlid: number; leaseId: string; holder: string }): void {
    try {
      this.table.release(params);
      if (this.marks.get(params.cntlid)?.leaseId === params.leaseId) this.marks.delete(params.cntlid);
    } finally {
      this.arm();
    }
  }

  /**
   * May `identity` change function `cntlid`? With a lease held: only its holder, and — when the
   * operation carries a lease id (`leaseId` defined) — only with the current id. Without a lease: yes,
   * unless `required`; a non-empty `leaseId` then names a lease that is gone (`not-found`).
   * Returns the lease the change is made under, if any.
   */
  authorize(
    cntlid: number,
    identity: string,
    leaseId: string | undefined,
    required: boolean,
  ): LeaseInfo | undefined {
    const lease = this.get(cntlid);
    if (lease === undefined) {
      if (leaseId !== undefined && leaseId !== "") {
        throw new ControlError(
          "not-found",
          `function ${cntlid} has no lease ${JSON.stringify(leaseId)} (it expired or was released)`,
        );
      }
      if (required) {
        throw new ControlError("failed-precondition", `function ${cntlid}: acquire a lease first`);
      }
      return undefined;
    }
    if (leaseId === undefined) {
      if (lease.holder !== identity) {
        throw new ControlError("failed-precondition", `function ${cntlid} is leased by ${lease.holder}`);
      }
      return lease;
    }
    return this.table.check(cntlid, leaseId, identity);
  }

  /** Records what the expiry of `leaseId` must undo on `cntlid` (replacing an earlier mark). */
  mark(cntlid: number, leaseId: string, action: ExpiryAction): void {
    this.marks.set(cntlid, { leaseId, action });
  }

  unmark(cntlid: number): void {
    this.marks.delete(cntlid);
  }

  /** Stops the timer; leases are no longer swept by time. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
