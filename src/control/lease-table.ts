/**
 * The table of migration leases of one host: at most one lease per function (CNTLID). Pure logic
 * with a clock seam; no timers. A backend keeps one table, calls `sweep()` from a timer armed at
 * `nextExpiryAtMs()` (and every operation sweeps first), and acts on expired leases through the
 * `onExpired` callback — e.g. resume a function that was left suspended (that rule lives in the
 * backend, not here).
 *
 * Lease life:   acquire ──► held ──renew──► held ──release──► (gone)
 *                             └──── clock passes expiresAtUnixMs ──► sweep ──► onExpired ──► (gone)
 *
 * Errors (ControlError): `not-found` (no lease on that function), `failed-precondition` (held by
 * someone else, or the lease id is not the current one), `permission-denied` (the lease id is right
 * but the caller is not its holder), `invalid-argument` (bad duration).
 */
import { randomUUID } from "node:crypto";
import type { LeaseInfo } from "./backend.ts";
import { ControlError } from "./errors.ts";

/** Time source, Unix epoch milliseconds. Tests pass a settable fake. */
export interface Clock {
  nowMs(): number;
}

export const systemClock: Clock = { nowMs: () => Date.now() };

export interface LeaseTableOptions {
  /** Default: `systemClock`. */
  clock?: Clock;
  /** Duration used when a request asks for 0 ms. Default 30 000 ms. */
  defaultLeaseMs?: number;
  /** Shorter requests are raised to this. Default 1 000 ms. */
  minLeaseMs?: number;
  /** Longer requests are clamped to this. Default 600 000 ms (10 min). */
  maxLeaseMs?: number;
  /** Lease id generator. Default `crypto.randomUUID`. */
  newLeaseId?: () => string;
  /** Called (synchronously, during a sweep) for each lease that expired, after it was removed. */
  onExpired?: (lease: LeaseInfo) => void;
}

export class LeaseTable {
  readonly #clock: Clock;
  readonly #defaultLeaseMs: number;
  readonly #minLeaseMs: number;
  readonly #maxLeaseMs: number;
  readonly #newLeaseId: () => string;
  readonly #onExpired: ((lease: LeaseInfo) => void) | undefined;
  readonly #leases = new Map<number, LeaseInfo>();

  constructor(options: LeaseTableOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#defaultLeaseMs = options.defaultLeaseMs ?? 30_000;
    this.#minLeaseMs = options.minLeaseMs ?? 1_000;
    this.#maxLeaseMs = options.maxLeaseMs ?? 600_000;
    this.#newLeaseId = options.newLeaseId ?? randomUUID;
    this.#onExpired = options.onExpired;
    if (
      !(
        this.#minLeaseMs > 0 &&
        this.#minLeaseMs <= this.#defaultLeaseMs &&
        this.#defaultLeaseMs <= this.#maxLeaseMs
      )
    ) {
      throw new RangeError("LeaseTable: need 0 < minLeaseMs <= defaultLeaseMs <= maxLeaseMs");
    }
  }

  #duration(requestedMs: number): number {
    if (!Number.isInteger(requestedMs) || requestedMs < 0) {
      throw new ControlError(
        "invalid-argument",
        `lease duration ${requestedMs} ms is not a non-negative integer`,
      );
    }
    if (requestedMs === 0) return this.#defaultLeaseMs;
    return Math.min(this.#maxLeaseMs, Math.max(this.#minLeaseMs, requestedMs));
  }

  /** Removes every lease whose expiry is <= now, calling `onExpired` for each; returns them. */
  sweep(): LeaseInfo[] {
    const now = this.#clock.nowMs();
    const expired: LeaseInfo[] = [];
    for (const [cntlid, lease] of this.#leases) {
      if (lease.expiresAtUnixMs <= now) {
        this.#leases.delete(cntlid);
        expired.push(lease);
      }
    }
    for (const lease of expired) this.#onExpired?.({ ...lease });
    return expired;
  }

  /** Earliest expiry among held leases (Unix ms), or undefined when none is held. */
  nextExpiryAtMs(): number | undefined {
    let next: number | undefined;
    for (const lease of this.#leases.values()) {
      if (next === undefined || lease.expiresAtUnixMs < next) next = lease.expiresAtUnixMs;
    }
    return next;
  }

  /** The current lease of a function, if any (after a sweep). */
  get(cntlid: number): LeaseInfo | undefined {
    this.sweep();
    const lease = this.#leases.get(cntlid);
    return lease === undefined ? undefined : { ...lease };
  }

  /** Takes the lease of a free function. `leaseMs` 0 = default; clamped to [min, max]. */
  acquire(params: { cntlid: number; holder: string; leaseMs: number; description: string }): LeaseInfo {
    this.sweep();
    const leaseMs = this.#duration(params.leaseMs);
    const held = this.#leases.get(params.cntlid);
    if (held !== undefined) {
      throw new ControlError(
        "failed-precondition",
        `function ${params.cntlid} is leased by ${held.holder} until ${new Date(held.expiresAtUnixMs).toISOString()}`,
      );
    }
    const lease: LeaseInfo = {
      leaseId: this.#newLeaseId(),
      cntlid: params.cntlid,
      holder: params.holder,
      description: params.description,
      leaseMs,
      expiresAtUnixMs: this.#clock.nowMs() + leaseMs,
    };
    this.#leases.set(params.cntlid, lease);
    return { ...lease };
  }

  /** Extends a held lease from now by `leaseMs` (0 = the previously granted duration). */
  renew(params: { cntlid: number; leaseId: string; holder: string; leaseMs: number }): LeaseInfo {
    const lease = this.#current(params.cntlid, params.leaseId, params.holder);
    const leaseMs = params.leaseMs === 0 ? lease.leaseMs : this.#duration(params.leaseMs);
    lease.leaseMs = leaseMs;
    lease.expiresAtUnixMs = this.#clock.nowMs() + leaseMs;
    return { ...lease };
  }

  /** Gives a lease back. */
  release(params: { cntlid: number; leaseId: string; holder: string }): void {
    this.#current(params.cntlid, params.leaseId, params.holder);
    this.#leases.delete(params.cntlid);
  }

  /**
   * Checks that `leaseId` is the current lease of the function (for operations that require one);
   * returns it. `holder` undefined skips the holder check.
   */
  check(cntlid: number, leaseId: string, holder?: string): LeaseInfo {
    return { ...this.#current(cntlid, leaseId, holder) };
  }

  #current(cntlid: number, leaseId: string, holder: string | undefined): LeaseInfo {
    this.sweep();
    const lease = this.#leases.get(cntlid);
    if (lease === undefined) throw new ControlError("not-found", `function ${cntlid} has no lease`);
    if (lease.leaseId !== leaseId) {
      throw new ControlError(
        "failed-precondition",
        `lease ${JSON.stringify(leaseId)} is not the current lease of function ${cntlid}`,
      );
    }
    if (holder !== undefined && lease.holder !== holder) {
      throw new ControlError(
        "permission-denied",
        `lease of function ${cntlid} is held by ${lease.holder}, not ${holder}`,
      );
    }
    return lease;
  }
}
