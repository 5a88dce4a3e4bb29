/**
 * The NVMe variant driver: the VFIO migration v2 backend of one controlled function (an NVMe VF).
 * Like Linux's NVMe VFIO RFCs it reaches the controlling function (PF) through a software doorbell —
 * every arc is one or more admin commands on the PF's admin queue (`AdminChannel`), naming the
 * controlled controller by the CNTLID found in the Secondary Controller List.
 *
 * Arc → commands (TP4159 profile; migration flags STOP_COPY | P2P | PRE_COPY):
 *   RUNNING ⇄ RUNNING_P2P, PRE_COPY ⇄ PRE_COPY_P2P   no-op (an NVMe function initiates no P2P DMA)
 *   RUNNING(_P2P) → STOP                            Migration Send Suspend (STYPE 1)
 *   STOP → RUNNING(_P2P)                            Migration Send Resume
 *   STOP → STOP_COPY                                Migration Receive Get Controller State → saving session
 *   RUNNING(_P2P) → PRE_COPY(_P2P)                  [local storage: Controller Data Queue create +
 *                                                    Track Send start logging] → saving session
 *   PRE_COPY(_P2P) → STOP_COPY                      Suspend (UDMQ ends with ESA 3), Get Controller State
 *   PRE_COPY(_P2P) → RUNNING(_P2P)                  Track Send stop, Controller Data Queue delete
 *   STOP → RESUMING                                 resuming session (destination controller suspended)
 *   RESUMING → STOP                                 (commit) Migration Send Set Controller State
 *   STOP_COPY → STOP                                no-op
 * Intel profile (flags STOP_COPY only, as the 2022 RFC): 0xC8 / 0xCC / 0xC4 + 0xD2 / 0xD5.
 *
 * DMA logging maps to Track Send "Track Memory Changes" / Track Receive on the controlling function.
 */
import type {
  ArcResult,
  DataSizeResult,
  DmaLoggingBackend,
  DmaLoggingScope,
  DmaRange,
  MigrationBackend,
} from "../backend.ts";
import { dmaBitmapBytes } from "../dma-logging.ts";
import { Errno, MigFlag, MigState } from "../states.ts";
import type { AdminChannel, BlockChannel } from "./admin-channel.ts";
import { ControllerOpError, ControllerOps, type MigrationProfile } from "./controller-ops.ts";
import { MemoryTracking } from "./memory-tracking.ts";
import { lbaBytesOf, type NamespaceGeometry, NvmeResumingSession, NvmeSavingSession } from "./sessions.ts";
import { UdmqReader } from "./udmq-reader.ts";

export interface NvmeVariantOptions {
  channel: AdminChannel;
  /** VF number of the controlled function (1-based). */
  vfn: number;
  /** Command set used on the PF. Default "tp4159". */
  profile?: MigrationProfile;
  /** "shared" (default): both hosts see the same namespaces; "local": namespace data moves too. */
  storage?: "shared" | "local";
  /** Namespace block I/O on the controlling function; required for local storage. */
  blocks?: BlockChannel;
  /** Namespaces whose data moves (local storage), with their geometry. */
  namespaces?: { nsid: number; lbaCount: number }[];
  /** Namespace bytes per stream record. Default 128 KiB, range 4 KiB..512 KiB. */
  chunkBytes?: number;
  /** Label in the stream header identity. */
  identity?: string;
  /** The function's DMA map, to resolve DMA logging of "everything". */
  dmaRanges?: () => DmaRange[];
}

/** Upper bound of a controller state this driver expects (NVMe state + vendor section), bytes. */
export const CONTROLLER_STATE_BOUND_BYTES = 64 * 1024;

export interface NvmeVariantDriver {
  readonly migration: MigrationBackend;
  readonly dmaLogging: DmaLoggingBackend;
  readonly cntlid: number;
  /** Figures of the last saving session (for reports). */
  lastSaving(): { namespaceBytesSent: number; stateBytes: number } | undefined;
}

/** A failed admin command leaves the device where it was (the PF refused; nothing changed). */
function failure(e: unknown): ArcResult {
  if (!(e instanceof ControllerOpError)) throw e;
  return { ok: false, errno: Errno.EIO, deviceError: false };
}

export async function createNvmeVariantDriver(o: NvmeVariantOptions): Promise<NvmeVariantDriver> {
  const profile = o.profile ?? "tp4159";
  const ops = await ControllerOps.open(o.channel, o.vfn, profile);
  const local = (o.storage ?? "shared") === "local";
  if (local && o.blocks === undefined)
    throw new Error("local storage needs a BlockChannel on the controlling function");
  const chunkBytes = o.chunkBytes ?? 128 * 1024;
  const identity = o.identity ?? `nvmig nvme vf${o.vfn}`;
  const namespaces = (): NamespaceGeometry[] =>
    (o.namespaces ?? []).map((n) => {
      const lbaBytes = lbaBytesOf(o.blocks?.lbaBytes(n.nsid));
      if (lbaBytes === undefined) throw new Error(`namespace ${n.nsid} unknown to the controlling function`);
      return { nsid: n.nsid, lbaBytes, lbaCount: n.lbaCount };
    });

  let saving: NvmeSavingSession | undefined;
  let udmq: UdmqReader | undefined;
  let lastStateBytes = 0;
  let lastSession: NvmeSavingSession | undefined;

  const openSaving = async (precopy: boolean): Promise<NvmeSavingSession> => {
    // Local storage without pre-copy (STOP → STOP_COPY, or the Intel profile) sends whole namespaces
    // in stop-copy; with pre-copy they go during PRE_COPY and the UDMQ catches later changes.
    const s = new NvmeSavingSession(
      local ? o.blocks : undefined,
      local ? namespaces() : [],
      chunkBytes,
      identity,
      undefined,
    );
    if (local && precopy) {
      udmq = new UdmqReader(o.channel, ops.cntlid, s.logs);
      await udmq.start();
      s.attachUdmq(udmq);
    }
    saving = s;
    lastSession = s;
    return s;
  };

  const closeUdmq = async (stopLogging: boolean) => {
    const r = udmq;
    udmq = undefined;
    if (r !== undefined) await r.close(stopLogging);
  };

  const finalizeSaving = async (s: NvmeSavingSession) => {
    await ops.suspend();
    if (udmq !== undefined) {
      // The suspend posted ESA 3: read the last ranges, then drop the queue.
      await udmq.drain();
      await closeUdmq(false);
    }
    const state = await ops.getState();
    lastStateBytes = state.byteLength;
    s.finalize(state);
  };

  const flags = profile === "intel" ? MigFlag.STOP_COPY : MigFlag.STOP_COPY | MigFlag.P2P | MigFlag.PRE_COPY;
  const S = MigState;

  const migration: MigrationBackend = {
    migrationFlags: flags,
    async arc(from, to): Promise<ArcResult> {
      try {
        if (
          (from === S.RUNNING && to === S.RUNNING_P2P) ||
          (from === S.RUNNING_P2P && to === S.RUNNING) ||
          (from === S.PRE_COPY && to === S.PRE_COPY_P2P) ||
          (from === S.PRE_COPY_P2P && to === S.PRE_COPY) ||
          (from === S.STOP_COPY && to === S.STOP) ||
          (from === S.RESUMING && to === S.STOP)
        ) {
          if (from === S.STOP_COPY) saving = undefined;
          return { ok: true };
        }
        if ((from === S.RUNNING || from === S.RUNNING_P2P) && to === S.STOP) {
          await ops.suspend();
          return { ok: true };
        }
        if (from === S.STOP && (to === S.RUNNING || to === S.RUNNING_P2P)) {
          await ops.resume();
          return { ok: true };
        }
        if (from === S.STOP && to === S.STOP_COPY) {
          const s = await openSaving(false);
          const state = await ops.getState();
          lastStateBytes = state.byteLength;
          s.finalize(state);
          return { ok: true, session: s };
        }
        if ((from === S.RUNNING && to === S.PRE_COPY) || (from === S.RUNNING_P2P && to === S.PRE_COPY_P2P)) {
          return { ok: true, session: await openSaving(true) };
        }
        if ((from === S.PRE_COPY || from === S.PRE_COPY_P2P) && to === S.STOP_COPY) {
          await finalizeSaving(saving!);
          return { ok: true };
        }
        if ((from === S.PRE_COPY && to === S.RUNNING) || (from === S.PRE_COPY_P2P && to === S.RUNNING_P2P)) {
          await closeUdmq(true);
          saving = undefined;
          return { ok: true };
        }
        if (from === S.STOP && to === S.RESUMING) {
          return { ok: true, session: new NvmeResumingSession(ops, local ? o.blocks : undefined, 1 << 20) };
        }
        return { ok: false, errno: Errno.EINVAL, deviceError: false };
      } catch (e) {
        return failure(e);
      }
    },
    dataSize(): DataSizeResult {
      const pending = saving?.pendingDataBytes() ?? 0;
      const state = Math.max(lastStateBytes * 2, CONTROLLER_STATE_BOUND_BYTES);
      // Stream framing: header + a record header per chunk + END.
      const framing = 256 + Math.ceil(pending / chunkBytes + 2) * 32;
      return { ok: true, stopCopyLength: BigInt(pending + state + framing) };
    },
    async reset(): Promise<void> {
      saving = undefined;
      await closeUdmq(true).catch(() => {});
      await tracking.stop().catch(() => {});
      await ops.resume(true).catch(() => {});
    },
  };

  const tracking = new MemoryTracking(o.channel, ops.cntlid);
  const dmaLogging: DmaLoggingBackend = {
    async start(scope: DmaLoggingScope, pageSize: bigint) {
      const ranges = scope === "all" ? (o.dmaRanges?.() ?? []) : scope;
      if (ranges.length === 0) return { errno: Errno.EINVAL };
      return tracking.start(ranges, pageSize);
    },
    stop: () => tracking.stop(),
    async reportAndClear(iova: bigint, length: bigint, pageSize: bigint) {
      const r = await tracking.reportAndClear(iova, length, pageSize);
      if (r instanceof Uint8Array && BigInt(r.byteLength) !== dmaBitmapBytes(length, pageSize))
        return { errno: Errno.EIO };
      return r;
    },
  };

  return {
    migration,
    dmaLogging,
    cntlid: ops.cntlid,
    lastSaving: () =>
      lastSession === undefined
        ? undefined
        : { namespaceBytesSent: lastSession.namespaceBytesSent, stateBytes: lastStateBytes },
  };
}
