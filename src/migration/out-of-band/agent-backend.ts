/**
 * Out-of-band migration: the orchestrator drives each host's controlling-function agent over gRPC
 * (`MigrationService`) instead of the VMM's VFIO portal. To reuse the one migration loop, each remote
 * function is wrapped in a local `MigrationPortal` whose backend turns VFIO arcs into agent RPCs — the
 * same device effects as the in-band variant driver, with the agent issuing the TP4159 commands:
 *
 *   orchestrator ── portal (local state machine) ── this backend ══ gRPC ══► agent ── PF admin queue
 *
 *   RUNNING → PRE_COPY         AcquireLease; [local storage: StartUserDataLogging + StreamChangedLbaRanges]
 *   PRE_COPY → STOP_COPY       Suspend (STYPE 1); [the stream up to its ESA 3 end entry]; GetControllerState
 *   RUNNING → STOP → RESUMING  AcquireLease; Suspend (destination); namespace data → WriteNamespaceData
 *                              (one call at a time, in stream order: a newer copy of a block lands last)
 *   RESUMING → STOP (commit)   SetControllerState
 *   STOP → RUNNING             Resume; ReleaseLease
 *   PRE_COPY / STOP_COPY → …RUNNING (rollback)   StopUserDataLogging / Resume; ReleaseLease
 *   DMA logging                StartDirtyTracking / ReportDirtyPages / StopDirtyTracking
 *   reset                      ResetFunction
 *
 * The lease makes a dead orchestrator safe: when it expires, the agent resumes a suspended source (and
 * resets a restored destination), so the function runs on exactly one side.
 */
import type { ControlClient } from "../../control/client.ts";
import type { ArcResult, DmaLoggingBackend, MigrationBackend } from "../../vfio/backend.ts";
import type { BlockChannel } from "../../vfio/nvme/admin-channel.ts";
import type { ControlledFunctionOps } from "../../vfio/nvme/function-ops.ts";
import { type NamespaceGeometry, NvmeResumingSession, NvmeSavingSession } from "../../vfio/nvme/sessions.ts";
import { CONTROLLER_STATE_BOUND_BYTES } from "../../vfio/nvme/variant-driver.ts";
import { MigrationPortal } from "../../vfio/portal.ts";
import { Errno, MigFlag, MigState } from "../../vfio/states.ts";
import { AgentChangeFeed } from "./change-feed.ts";

export interface AgentFunctionOptions {
  client: ControlClient;
  /** CNTLID of the function on that host. */
  cntlid: number;
  /** "shared" (default) or "local" (namespace data moves through the agents). */
  storage?: "shared" | "local";
  /** Namespaces that move with local storage. */
  namespaces?: readonly { nsid: number; lbaCount: number; lbaBytes: 512 | 4096 }[];
  /** Lease length, ms. Default 10000, range 1000..600000. */
  leaseMs?: number;
  /** Namespace bytes per stream record. Default 128 KiB. */
  chunkBytes?: number;
  label?: string;
}

/** NVMe Data Transfer Error (with DNR): what a failed agent data call turns into. */
const DATA_TRANSFER_ERROR = 0x4004;

class AgentOps implements ControlledFunctionOps {
  leaseId = "";
  constructor(
    private readonly client: ControlClient,
    private readonly cntlid: number,
  ) {}
  async suspend(): Promise<void> {
    await this.client.suspend({ cntlid: this.cntlid, suspendType: "suspend", leaseId: this.leaseId });
  }
  async resume(ifSuspended = false): Promise<void> {
    try {
      await this.client.resume({ cntlid: this.cntlid, leaseId: this.leaseId });
    } catch (e) {
      if (!ifSuspended) throw e;
    }
  }
  getState(): Promise<Uint8Array> {
    return this.client.readControllerState({ cntlid: this.cntlid, csvi: 1, csuuidi: 1 });
  }
  async setState(blob: Uint8Array): Promise<void> {
    await this.client.writeControllerState({
      cntlid: this.cntlid,
      csvi: 1,
      csuuidi: 1,
      state: blob,
      leaseId: this.leaseId,
    });
  }
}

/** Namespace block I/O through the agent (Read/WriteNamespaceData); writes are applied in order. */
class AgentBlocks implements BlockChannel {
  /** Writes not yet sent, in the order the resuming session made them. */
  private queued: { nsid: number; slba: bigint; data: Uint8Array; done: (r: { status: number }) => void }[] =
    [];
  private writing = false;

  constructor(
    private readonly client: ControlClient,
    private readonly cntlid: number,
    private readonly geometry: Map<number, 512 | 4096>,
  ) {}
  lbaBytes(nsid: number): number | undefined {
    return this.geometry.get(nsid);
  }
  async read(nsid: number, slba: number, nlb: number): Promise<{ status: number; data?: Uint8Array }> {
    try {
      return await this.readOrThrow(nsid, slba, nlb);
    } catch {
      return { status: DATA_TRANSFER_ERROR };
    }
  }
  private async readOrThrow(
    nsid: number,
    slba: number,
    nlb: number,
  ): Promise<{ status: number; data?: Uint8Array }> {
    const lbaBytes = this.geometry.get(nsid);
    if (lbaBytes === undefined) return { status: 0x400b };
    const out = new Uint8Array(nlb * lbaBytes);
    let at = 0;
    for await (const c of this.client.readNamespaceData({
      cntlid: this.cntlid,
      nsid,
      ranges: [{ slba: BigInt(slba), nlb: nlb - 1 }],
    })) {
      out.set(c.data, at);
      at += c.data.byteLength;
    }
    return at === out.byteLength ? { status: 0, data: out } : { status: DATA_TRANSFER_ERROR };
  }
  /**
   * Queues a write; writes reach the agent in the order they were queued. A record of the migration
   * stream can carry a newer copy of blocks an earlier record carried (changed ranges after the initial
   * pass, or after an earlier round), and only that order makes the newer copy the one that stays.
   */
  write(nsid: number, slba: number, data: Uint8Array): Promise<{ status: number }> {
    return new Promise((done) => {
      this.queued.push({ nsid, slba: BigInt(slba), data, done });
      if (!this.writing) void this.pumpWrites();
    });
  }

  /**
   * One WriteNamespaceData call at a time, each carrying every write queued meanwhile (for one
   * namespace), in queue order: calls in flight together could be applied in any order on the agent
   * (a large message arrives after a small one sent later), and an older copy of a block would
   * overwrite the newer one on the destination.
   */
  private async pumpWrites(): Promise<void> {
    this.writing = true;
    try {
      for (;;) {
        const nsid = this.queued[0]?.nsid;
        if (nsid === undefined) return;
        let n = 1;
        while (n < this.queued.length && this.queued[n]!.nsid === nsid) n++;
        const batch = this.queued.splice(0, n);
        let status = 0;
        try {
          await this.client.writeNamespaceData(
            { cntlid: this.cntlid, nsid },
            batch.map((w) => ({ slba: w.slba, data: w.data })),
          );
        } catch {
          status = DATA_TRANSFER_ERROR;
        }
        for (const w of batch) w.done({ status });
      }
    } finally {
      this.writing = false;
    }
  }
}

export function createAgentBackend(o: AgentFunctionOptions): {
  migration: MigrationBackend;
  dmaLogging: DmaLoggingBackend;
} {
  const { client, cntlid } = o;
  const ops = new AgentOps(client, cntlid);
  const local = (o.storage ?? "shared") === "local";
  const geometry = new Map((o.namespaces ?? []).map((n) => [n.nsid, n.lbaBytes] as const));
  const blocks = new AgentBlocks(client, cntlid, geometry);
  const namespaces: NamespaceGeometry[] = (o.namespaces ?? []).map((n) => ({
    nsid: n.nsid,
    lbaBytes: n.lbaBytes,
    lbaCount: n.lbaCount,
  }));
  const chunkBytes = o.chunkBytes ?? 128 * 1024;
  const identity = o.label ?? `agent cntlid ${cntlid}`;
  let saving: NvmeSavingSession | undefined;
  let feed: AgentChangeFeed | undefined;
  let lastStateBytes = 0;

  // The lease is renewed every third of its length while this orchestrator lives; if it dies, the
  // renewals stop and the agent's expiry rule puts the function back on exactly one side.
  const leaseMs = o.leaseMs ?? 10_000;
  let renewTimer: NodeJS.Timeout | undefined;
  const lease = async () => {
    if (ops.leaseId !== "") return;
    ops.leaseId = (await client.acquireLease({ cntlid, leaseMs, description: "nvmig migrate" })).leaseId;
    renewTimer = setInterval(
      () => {
        if (ops.leaseId !== "") client.renewLease({ cntlid, leaseId: ops.leaseId, leaseMs }).catch(() => {});
      },
      Math.max(100, Math.floor(leaseMs / 3)),
    );
    renewTimer.unref();
  };
  const unlease = async () => {
    if (renewTimer !== undefined) clearInterval(renewTimer);
    renewTimer = undefined;
    const id = ops.leaseId;
    ops.leaseId = "";
    if (id !== "") await client.releaseLease({ cntlid, leaseId: id }).catch(() => {});
  };
  const stopFeed = async (stopLogging: boolean) => {
    const f = feed;
    feed = undefined;
    if (f === undefined) return;
    if (stopLogging) await client.stopUserDataLogging(cntlid).catch(() => {});
    await f.close();
  };

  const S = MigState;
  const migration: MigrationBackend = {
    migrationFlags: MigFlag.STOP_COPY | MigFlag.PRE_COPY,
    async arc(from, to): Promise<ArcResult> {
      try {
        if (from === S.RUNNING && to === S.PRE_COPY) {
          await lease();
          const s = new NvmeSavingSession(
            local ? blocks : undefined,
            local ? namespaces : [],
            chunkBytes,
            identity,
            undefined,
          );
          if (local) {
            await client.startUserDataLogging(cntlid);
            feed = new AgentChangeFeed(client, cntlid, s.logs);
            s.attachUdmq(feed);
          }
          saving = s;
          return { ok: true, session: s };
        }
        if (from === S.PRE_COPY && to === S.STOP_COPY) {
          await ops.suspend();
          if (feed !== undefined) {
            // STOP_COPY data must hold every range the controller logged before its ESA 3 entry: the
            // agent ends the stream only after it, and the session is finalized only after the stream.
            await feed.untilEnd();
            await stopFeed(false);
          }
          const state = await ops.getState();
          lastStateBytes = state.byteLength;
          saving!.finalize(state);
          return { ok: true };
        }
        if (from === S.PRE_COPY && to === S.RUNNING) {
          await stopFeed(true);
          saving = undefined;
          await unlease();
          return { ok: true };
        }
        if (from === S.RUNNING && to === S.STOP) {
          await lease();
          await ops.suspend();
          return { ok: true };
        }
        if (from === S.STOP && to === S.STOP_COPY) {
          const s = new NvmeSavingSession(
            local ? blocks : undefined,
            local ? namespaces : [],
            chunkBytes,
            identity,
            undefined,
          );
          const state = await ops.getState();
          lastStateBytes = state.byteLength;
          s.finalize(state);
          saving = s;
          return { ok: true, session: s };
        }
        if (from === S.STOP && to === S.RESUMING) {
          return { ok: true, session: new NvmeResumingSession(ops, local ? blocks : undefined, 1 << 20) };
        }
        if (from === S.STOP && to === S.RUNNING) {
          await ops.resume();
          await unlease();
          return { ok: true };
        }
        if (from === S.STOP_COPY && to === S.STOP) {
          // Migrated away (or rolling back through STOP): the lease's job is done either way.
          saving = undefined;
          await unlease();
          return { ok: true };
        }
        if (from === S.RESUMING && to === S.STOP) return { ok: true };
        return { ok: false, errno: Errno.EINVAL, deviceError: false };
      } catch (e) {
        if (process.env.NVMIG_DEBUG_OOB) console.error("arc", from, to, e);
        return { ok: false, errno: Errno.EIO, deviceError: false };
      }
    },
    dataSize() {
      const pending = saving?.pendingDataBytes() ?? 0;
      return {
        ok: true,
        stopCopyLength: BigInt(pending + Math.max(2 * lastStateBytes, CONTROLLER_STATE_BOUND_BYTES) + 4096),
      };
    },
    async reset() {
      saving = undefined;
      await stopFeed(true).catch(() => {});
      await client.resetFunction({ cntlid, leaseId: ops.leaseId }).catch(() => {});
      await unlease();
    },
  };

  const dmaLogging: DmaLoggingBackend = {
    async start(scope, pageSize) {
      if (scope === "all") return { errno: Errno.EINVAL };
      try {
        const r = await client.startDirtyTracking({
          cntlid,
          ranges: scope.map((x) => ({ iova: x.iova, lengthBytes: x.length })),
          pageSizeBytes: pageSize,
        });
        return { pageSize: r.pageSizeBytes };
      } catch {
        return { errno: Errno.EIO };
      }
    },
    async stop() {
      await client.stopDirtyTracking(cntlid).catch(() => {});
    },
    async reportAndClear(iova, length, pageSize) {
      try {
        return await client.reportDirtyPages({ cntlid, iova, lengthBytes: length, pageSizeBytes: pageSize });
      } catch {
        return { errno: Errno.EIO };
      }
    },
  };
  return { migration, dmaLogging };
}

/** A local portal over a remote function (see the module comment). */
export function agentPortal(o: AgentFunctionOptions): MigrationPortal {
  const b = createAgentBackend(o);
  return new MigrationPortal({
    migration: b.migration,
    dmaLogging: b.dmaLogging,
    label: o.label ?? `agent/${o.cntlid}`,
  });
}
