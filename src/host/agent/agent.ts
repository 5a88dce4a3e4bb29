/**
 * The controlling function's agent: the `ControlBackend` the out-of-band gRPC service calls, over one
 * `HostNode`. Every migration operation is a real admin command on the PF's admin queue (the PF host
 * driver's software doorbell) naming the controlled controller by CNTLID; namespace data moves as NVM
 * Read / Write on the PF's I/O queues; reset is a Function Level Reset through the VF's config space.
 * Controller internals are only READ, for descriptive state (online, suspended, queue counts).
 *
 *   orchestrator ── gRPC ──► server (authn, authz, checks) ──► HostAgent ──► PF admin SQ ──► VF n
 *                                                                │
 *                                     leases + expiry rule ◄─────┤ (timer, unref'd)
 *                                     events ◄───────────────────┘ (own changes + a state poll)
 *
 * Rules:
 * - Operations on one function run one at a time (per-CNTLID queue); different functions run
 *   concurrently.
 * - A held lease is always enforced: only its holder may change the function, with the current lease
 *   id where the RPC carries one. `requireLease` makes a lease mandatory for every change.
 * - Lease expiry undoes what was done under it (see lease-keeper.ts): a function suspended under the
 *   lease is resumed, a function whose state was set under it is reset.
 * - Every device failure becomes a `ControlError` naming the NVMe status (device-errors.ts); the
 *   controller validates a state completely before applying it, so a refused state changes nothing.
 */
import type {
  AcquireLeaseParams,
  CallContext,
  ChangedLbaRange,
  ControlBackend,
  ControlEvent,
  ControllerStateSelector,
  FunctionDetails,
  FunctionInfo,
  FunctionState,
  LeaseInfo,
  NamespaceDataChunk,
  NamespaceDataReader,
  ReadNamespaceDataParams,
  ReleaseLeaseParams,
  RenewLeaseParams,
  ReportDirtyPagesParams,
  ResumeParams,
  SetControllerStateParams,
  StartDirtyTrackingParams,
  SuspendParams,
  WriteNamespaceDataParams,
} from "../../control/backend.ts";
import { ControlError } from "../../control/errors.ts";
import { type ControlLogger, defaultControlLogger } from "../../control/logger.ts";
import type { NvmeFunction } from "../../controller/nvme-function.ts";
import { SuspendType } from "../../nvme/migration-commands.ts";
import type { SecondaryControllerEntry } from "../../nvme/secondary-controller-list.ts";
import type { HostNode } from "../host-node.ts";
import { DirtyTracking } from "./dirty-tracking.ts";
import { EventHub } from "./event-hub.ts";
import { KeyedSerial } from "./keyed-serial.ts";
import { type ExpiryAction, type LeaseDurations, LeaseKeeper } from "./lease-keeper.ts";
import { type NamespaceGeometry, readRanges, writeChunks } from "./namespace-io.ts";
import { initiateFunctionLevelReset, type PciAddress, parsePciAddress, vfPciName } from "./pci-function.ts";
import { Tp4159Commands } from "./tp4159-commands.ts";
import { UserDataLogSession } from "./user-data-log.ts";

export interface HostAgentOptions {
  /** PCI address of the PF, "dddd:bb:dd.f"; VF names follow from its SR-IOV offset / stride. Default "0000:01:00.0". */
  pfPciAddress?: string;
  /** Require a lease for every change of a function (a held lease is enforced either way). Default false. */
  requireLease?: boolean;
  /** Lease durations, ms. Defaults: default 30 000, min 1 000, max 600 000. */
  leases?: LeaseDurations;
  /** How often an idle changed-LBA stream looks for new UDMQ entries, ms. Default 20, range 1..1000. */
  udmqPollMs?: number;
  /** Entries of each User Data Migration Queue. Default 1024 (32 KiB of PF host memory), range 2..65536. */
  udmqEntries?: number;
  /** How often state changes made outside the agent (in-band portal, guest reset) are looked for, ms. Default 200. */
  statePollMs?: number;
  /** Events a WatchEvents stream may have unread before it ends with resource-exhausted. Default 1024. */
  maxQueuedEvents?: number;
  /** Default: pino on stderr (the control plane's logger). */
  logger?: ControlLogger;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

export class HostAgent implements ControlBackend {
  readonly #node: HostNode;
  readonly #commands: Tp4159Commands;
  readonly #pfAddress: PciAddress;
  readonly #requireLease: boolean;
  readonly #udmqPollMs: number;
  readonly #udmqEntries: number;
  readonly #logger: ControlLogger;
  readonly #leases: LeaseKeeper;
  readonly #events: EventHub;
  readonly #serial = new KeyedSerial<number>();
  /** Secondary controllers by CNTLID (from the Secondary Controller List). */
  #secondaries = new Map<number, SecondaryControllerEntry>();
  /** States the agent is driving a function through (suspending, resuming, resetting). */
  readonly #transitions = new Map<number, FunctionState>();
  /** Last state reported in an event, per CNTLID. */
  readonly #lastKnown = new Map<number, FunctionState>();
  readonly #logs = new Map<number, UserDataLogSession>();
  readonly #tracking = new Map<number, DirtyTracking>();
  readonly #closing = new AbortController();
  readonly #statePoll: NodeJS.Timeout;
  #closed = false;

  private constructor(node: HostNode, commands: Tp4159Commands, options: HostAgentOptions) {
    this.#node = node;
    this.#commands = commands;
    this.#pfAddress = parsePciAddress(options.pfPciAddress ?? "0000:01:00.0");
    this.#requireLease = options.requireLease ?? false;
    this.#udmqPollMs = Math.min(1000, Math.max(1, options.udmqPollMs ?? 20));
    this.#udmqEntries = options.udmqEntries ?? 1024;
    this.#logger = options.logger ?? defaultControlLogger();
    this.#events = new EventHub(options.maxQueuedEvents ?? 1024);
    this.#leases = new LeaseKeeper(options.leases ?? {}, (lease, action) =>
      this.#leaseExpired(lease, action),
    );
    this.#statePoll = setInterval(() => this.#refreshAll(), options.statePollMs ?? 200);
    this.#statePoll.unref();
  }

  /**
   * Opens the agent on `node`: checks the PF supports Host Managed Live Migration (Identify
   * Controller OACS.HMLMS) and reads its Secondary Controller List. Call `close()` when done (it does
   * not stop the node).
   */
  static async create(node: HostNode, options: HostAgentOptions = {}): Promise<HostAgent> {
    const commands = await Tp4159Commands.open(node.pfDriver);
    const agent = new HostAgent(node, commands, options);
    try {
      await agent.#loadSecondaries();
    } catch (e) {
      await agent.close();
      throw e;
    }
    for (const e of agent.#secondaries.values()) agent.#lastKnown.set(e.scid, agent.#stateOf(e));
    return agent;
  }

  /** The host this agent drives. */
  get node(): HostNode {
    return this.#node;
  }

  // ------------------------------------------------------------------ functions and state

  async #loadSecondaries(): Promise<void> {
    const list = await this.#commands.secondaryControllers();
    this.#secondaries = new Map(list.map((e) => [e.scid, e]));
  }

  #open(): void {
    if (this.#closed) throw new ControlError("unavailable", `agent of host ${this.#node.name} is closed`);
  }

  /** The controlled function `cntlid` (`not-found` if the PF has no such secondary controller). */
  async #known(cntlid: number): Promise<SecondaryControllerEntry> {
    this.#open();
    let e = this.#secondaries.get(cntlid);
    if (e === undefined) {
      await this.#loadSecondaries();
      e = this.#secondaries.get(cntlid);
    }
    if (e === undefined) {
      throw new ControlError(
        "not-found",
        `host ${this.#node.name} has no controlled function with CNTLID ${cntlid}`,
      );
    }
    return e;
  }

  #function(e: SecondaryControllerEntry): NvmeFunction | undefined {
    return this.#node.subsystem.vfs.get(e.vfn);
  }

  #stateOf(e: SecondaryControllerEntry): FunctionState {
    const busy = this.#transitions.get(e.scid);
    if (busy !== undefined) return busy;
    const fn = this.#function(e);
    const online = this.#node.subsystem.subsystem.secondary(e.scid)?.online ?? false;
    if (fn === undefined || !online) return "offline";
    return fn.controller.suspended ? "suspended" : "running";
  }

  /** Emits a state-changed event if the state differs from the last one reported. */
  #refresh(e: SecondaryControllerEntry): FunctionState {
    const to = this.#stateOf(e);
    const from = this.#lastKnown.get(e.scid) ?? to;
    if (from !== to) {
      this.#lastKnown.set(e.scid, to);
      this.#events.emit({
        kind: "state-changed",
        cntlid: e.scid,
        timeUnixMs: Date.now(),
        fromState: from,
        toState: to,
      });
    }
    return to;
  }

  #refreshAll(): void {
    for (const e of this.#secondaries.values()) this.#refresh(e);
  }

  /** Runs `op` with the function shown in `state` meanwhile. */
  async #during<T>(e: SecondaryControllerEntry, state: FunctionState, op: () => Promise<T>): Promise<T> {
    this.#transitions.set(e.scid, state);
    this.#refresh(e);
    try {
      return await op();
    } finally {
      this.#transitions.delete(e.scid);
      this.#refresh(e);
    }
  }

  #namespaces(e: SecondaryControllerEntry): NamespaceGeometry[] {
    const fn = this.#function(e);
    const attached = fn?.controller.attachedNamespaces ?? this.#node.subsystem.subsystem.namespaces.keys();
    const known = this.#node.pfDriver.driver.namespaces;
    const out: NamespaceGeometry[] = [];
    for (const nsid of attached) {
      const ns = known.get(nsid);
      if (ns !== undefined) out.push({ nsid, sizeBlocks: BigInt(ns.nsze), lbaBytes: ns.lbaBytes });
    }
    return out.sort((a, b) => a.nsid - b.nsid);
  }

  #namespace(e: SecondaryControllerEntry, nsid: number): NamespaceGeometry {
    const ns = this.#namespaces(e).find((n) => n.nsid === nsid);
    if (ns === undefined) throw new ControlError("not-found", `function ${e.scid} has no namespace ${nsid}`);
    return ns;
  }

  #info(e: SecondaryControllerEntry): FunctionInfo {
    const fn = this.#function(e);
    let ioQueuePairs = 0;
    fn?.controller.sqs.forEach((sq, qid) => {
      if (qid > 0 && sq !== undefined) ioQueuePairs++;
    });
    return {
      cntlid: e.scid,
      vfNumber: e.vfn,
      pciName: vfPciName(this.#node.subsystem.pf, this.#pfAddress, e.vfn),
      state: this.#stateOf(e),
      ioQueuePairs,
      namespaces: this.#namespaces(e),
    };
  }

  #authorize(cntlid: number, ctx: CallContext, leaseId?: string): LeaseInfo | undefined {
    return this.#leases.authorize(cntlid, ctx.identity, leaseId, this.#requireLease);
  }

  async listFunctions(_ctx: CallContext): Promise<FunctionInfo[]> {
    this.#open();
    await this.#loadSecondaries();
    return [...this.#secondaries.values()].sort((a, b) => a.scid - b.scid).map((e) => this.#info(e));
  }

  async describeFunction(cntlid: number, _ctx: CallContext): Promise<FunctionDetails> {
    const e = await this.#known(cntlid);
    return this.#serial.run(cntlid, async () => {
      const info = this.#info(e);
      let controllerStateBytes = 0n;
      if (info.state === "suspended") {
        controllerStateBytes = BigInt(
          await this.#commands.controllerStateBytes(cntlid, { csvi: 0, csuuidi: 0 }).catch(() => 0),
        );
      }
      const details: FunctionDetails = {
        function: info,
        controllerStateBytes,
        userDataLogging: this.#logs.get(cntlid)?.active ?? false,
        dirtyTracking: this.#tracking.has(cntlid),
      };
      const lease = this.#leases.get(cntlid);
      if (lease !== undefined) details.lease = lease;
      return details;
    });
  }

  // ------------------------------------------------------------------ suspend / resume / state

  async suspend(p: SuspendParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    const e = await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, async () => {
      const lease = this.#authorize(p.cntlid, ctx, p.leaseId);
      if (p.suspendType === "notification") {
        await this.#commands.suspend(p.cntlid, SuspendType.SuspendNotification, p.deleteUdmq);
        return { state: this.#refresh(e) };
      }
      await this.#during(e, "suspending", () =>
        this.#commands.suspend(p.cntlid, SuspendType.Suspend, p.deleteUdmq),
      );
      if (lease !== undefined) this.#leases.mark(p.cntlid, lease.leaseId, "resume");
      // The controller posted ESA 3 in an active UDMQ: read it now (the stream reports a failure).
      await this.#logs
        .get(p.cntlid)
        ?.drain()
        .catch(() => {});
      return { state: this.#refresh(e) };
    });
  }

  async resume(p: ResumeParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    const e = await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, async () => {
      this.#authorize(p.cntlid, ctx, p.leaseId);
      await this.#during(e, "resuming", () => this.#commands.resume(p.cntlid));
      this.#leases.unmark(p.cntlid);
      return { state: this.#refresh(e) };
    });
  }

  async getControllerState(p: ControllerStateSelector, _ctx: CallContext): Promise<Uint8Array> {
    await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, () => this.#commands.getState(p.cntlid, p));
  }

  async setControllerState(p: SetControllerStateParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    const e = await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, async () => {
      const lease = this.#authorize(p.cntlid, ctx, p.leaseId);
      await this.#commands.setState(p.cntlid, p, p.state);
      if (lease !== undefined) this.#leases.mark(p.cntlid, lease.leaseId, "reset");
      return { state: this.#refresh(e) };
    });
  }

  // ------------------------------------------------------------------ user-data logging

  async startUserDataLogging(cntlid: number, ctx: CallContext): Promise<void> {
    const e = await this.#known(cntlid);
    await this.#serial.run(cntlid, async () => {
      this.#authorize(cntlid, ctx);
      if (this.#logs.get(cntlid)?.active) {
        throw new ControlError(
          "failed-precondition",
          `user-data logging of function ${cntlid} is already on`,
        );
      }
      const session = await UserDataLogSession.start(this.#node.pfDriver, cntlid, this.#namespaces(e), {
        queueEntries: this.#udmqEntries,
      });
      this.#logs.set(cntlid, session);
    });
  }

  async stopUserDataLogging(cntlid: number, ctx: CallContext): Promise<void> {
    await this.#known(cntlid);
    await this.#serial.run(cntlid, async () => {
      this.#authorize(cntlid, ctx);
      const session = this.#logs.get(cntlid);
      if (session === undefined || !session.active) {
        throw new ControlError("failed-precondition", `user-data logging of function ${cntlid} is not on`);
      }
      await session.stop();
    });
  }

  async *streamChangedLbaRanges(cntlid: number, ctx: CallContext): AsyncGenerator<ChangedLbaRange[]> {
    await this.#known(cntlid);
    const session = this.#logs.get(cntlid);
    if (session === undefined) {
      throw new ControlError(
        "failed-precondition",
        `user-data logging of function ${cntlid} was not started`,
      );
    }
    if (session.streaming) {
      throw new ControlError(
        "failed-precondition",
        `changed LBA ranges of function ${cntlid} are already streamed`,
      );
    }
    const signal = AbortSignal.any([ctx.signal, this.#closing.signal]);
    session.streaming = true;
    // The stream ends cleanly only after the end entry (ESA 2 / ESA 3) and every range before it; any
    // other end is an error, so a reader never takes a cut-short stream for a complete one.
    try {
      for (;;) {
        if (signal.aborted) {
          throw new ControlError("cancelled", `changed LBA ranges of function ${cntlid}: stream cancelled`);
        }
        await session.drain();
        const batch = session.take();
        if (batch.length > 0) yield batch;
        if (session.end !== undefined && session.pendingCount === 0) {
          if (this.#logs.get(cntlid) === session) this.#logs.delete(cntlid);
          return;
        }
        if (session.end === undefined && !session.active) {
          throw (
            session.failure ??
            new ControlError("internal", `user-data logging of function ${cntlid} ended without an end entry`)
          );
        }
        if (batch.length === 0) await sleep(this.#udmqPollMs, signal);
      }
    } finally {
      session.streaming = false;
    }
  }

  // ------------------------------------------------------------------ dirty tracking

  async startDirtyTracking(
    p: StartDirtyTrackingParams,
    ctx: CallContext,
  ): Promise<{ pageSizeBytes: bigint }> {
    await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, async () => {
      this.#authorize(p.cntlid, ctx);
      const t = await DirtyTracking.start(this.#node.pfDriver, p.cntlid, p.ranges, p.pageSizeBytes);
      this.#tracking.set(p.cntlid, t);
      return { pageSizeBytes: t.pageSizeBytes };
    });
  }

  async reportDirtyPages(p: ReportDirtyPagesParams, _ctx: CallContext): Promise<Uint8Array> {
    await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, async () => {
      const t = this.#tracking.get(p.cntlid);
      if (t === undefined) {
        throw new ControlError(
          "failed-precondition",
          `dirty tracking of function ${p.cntlid} is not started`,
        );
      }
      return t.report(p.iova, p.lengthBytes, p.pageSizeBytes);
    });
  }

  async stopDirtyTracking(cntlid: number, ctx: CallContext): Promise<void> {
    await this.#known(cntlid);
    await this.#serial.run(cntlid, async () => {
      this.#authorize(cntlid, ctx);
      const t = this.#tracking.get(cntlid);
      if (t === undefined) {
        throw new ControlError("failed-precondition", `dirty tracking of function ${cntlid} is not started`);
      }
      this.#tracking.delete(cntlid);
      await t.stop();
    });
  }

  // ------------------------------------------------------------------ reset

  /** Ends logging and tracking, then Function Level Reset through the VF's config space. */
  /** Stops user-data logging and host-memory dirty tracking of `e` (whoever started them is gone). */
  async #stopLogging(e: SecondaryControllerEntry): Promise<void> {
    await this.#logs
      .get(e.scid)
      ?.stop()
      .catch(() => {});
    const t = this.#tracking.get(e.scid);
    this.#tracking.delete(e.scid);
    await t?.stop().catch(() => {});
  }

  async #reset(e: SecondaryControllerEntry): Promise<FunctionState> {
    const fn = this.#function(e);
    if (fn === undefined) {
      throw new ControlError("failed-precondition", `VF ${e.vfn} (CNTLID ${e.scid}) is not enabled`);
    }
    await this.#stopLogging(e);
    await this.#during(e, "resetting", async () => {
      if (!initiateFunctionLevelReset(fn)) fn.reset();
    });
    this.#leases.unmark(e.scid);
    return this.#refresh(e);
  }

  async resetFunction(p: ResumeParams, ctx: CallContext): Promise<{ state: FunctionState }> {
    const e = await this.#known(p.cntlid);
    return this.#serial.run(p.cntlid, async () => {
      this.#authorize(p.cntlid, ctx, p.leaseId);
      return { state: await this.#reset(e) };
    });
  }

  // ------------------------------------------------------------------ events and leases

  watchEvents(cntlids: readonly number[] | "all", ctx: CallContext): AsyncIterable<ControlEvent> {
    this.#open();
    return this.#events.watch(cntlids, AbortSignal.any([ctx.signal, this.#closing.signal]));
  }

  #leaseExpired(lease: LeaseInfo, action: ExpiryAction | undefined): void {
    this.#logger.warn(
      {
        event: "agent.lease-expired",
        cntlid: lease.cntlid,
        leaseId: lease.leaseId,
        holder: lease.holder,
        action,
      },
      "lease expired",
    );
    this.#events.emit({
      kind: "lease-expired",
      cntlid: lease.cntlid,
      timeUnixMs: Date.now(),
      leaseId: lease.leaseId,
      holder: lease.holder,
    });
    if (this.#closed) return;
    const e = this.#secondaries.get(lease.cntlid);
    if (e === undefined) return;
    void this.#serial
      .run(lease.cntlid, async () => {
        if (this.#closed) return;
        // The holder is gone: nobody reads its logs any more, and a later migration must be able to
        // start its own.
        if (action !== "reset") await this.#stopLogging(e);
        if (action === undefined) return;
        if (action === "reset") await this.#reset(e);
        else if (this.#stateOf(e) === "suspended")
          await this.#during(e, "resuming", () => this.#commands.resume(e.scid));
        this.#logger.info(
          { event: `agent.lease-expiry-${action}`, cntlid: e.scid, state: this.#refresh(e) },
          action === "reset"
            ? "function reset after its lease expired"
            : "function resumed after its lease expired",
        );
      })
      .catch((err: unknown) => {
        this.#logger.error(
          { event: "agent.lease-expiry-failed", cntlid: e.scid, action, error: String(err) },
          "could not undo an expired lease's operation",
        );
      });
  }

  async acquireLease(p: AcquireLeaseParams, _ctx: CallContext): Promise<LeaseInfo> {
    await this.#known(p.cntlid);
    return this.#leases.acquire(p);
  }

  async renewLease(p: RenewLeaseParams, _ctx: CallContext): Promise<LeaseInfo> {
    await this.#known(p.cntlid);
    return this.#leases.renew(p);
  }

  async releaseLease(p: ReleaseLeaseParams, _ctx: CallContext): Promise<void> {
    await this.#known(p.cntlid);
    this.#leases.release(p);
  }

  // ------------------------------------------------------------------ namespace data

  async readNamespaceData(p: ReadNamespaceDataParams, ctx: CallContext): Promise<NamespaceDataReader> {
    const ns = this.#namespace(await this.#known(p.cntlid), p.nsid);
    const signal = AbortSignal.any([ctx.signal, this.#closing.signal]);
    return { lbaBytes: ns.lbaBytes, chunks: readRanges(this.#node.pfDriver, ns, p.ranges, signal) };
  }

  async writeNamespaceData(
    p: WriteNamespaceDataParams,
    chunks: AsyncIterable<NamespaceDataChunk>,
    ctx: CallContext,
  ): Promise<{ blocksWritten: bigint }> {
    const ns = this.#namespace(await this.#known(p.cntlid), p.nsid);
    this.#authorize(p.cntlid, ctx);
    const signal = AbortSignal.any([ctx.signal, this.#closing.signal]);
    return { blocksWritten: await writeChunks(this.#node.pfDriver, ns, chunks, signal) };
  }

  // ------------------------------------------------------------------ shutdown

  /**
   * Stops the agent: timers off, event and changed-LBA streams end, user-data logging queues are
   * stopped and freed, dirty tracking is stopped. Functions stay as they are; the node keeps running.
   * Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#statePoll);
    this.#leases.close();
    this.#closing.abort();
    this.#events.close();
    const logs = [...this.#logs.values()];
    this.#logs.clear();
    const tracking = [...this.#tracking.values()];
    this.#tracking.clear();
    for (const s of logs) await s.abandon();
    for (const t of tracking) await t.stop().catch(() => {});
  }
}

/** Opens a `HostAgent` on `node` (see `HostAgent.create`). */
export function createHostAgent(node: HostNode, options: HostAgentOptions = {}): Promise<HostAgent> {
  return HostAgent.create(node, options);
}
