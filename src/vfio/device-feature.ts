/**
 * VFIO_DEVICE_FEATURE for the migration features: envelope validation (`vfio_ioctl_device_feature` +
 * `vfio_check_feature`) and byte-exact payload decoding/encoding, on top of `MigrationPortal`'s typed API.
 *
 * Envelope checks, in the kernel's order:
 *   argsz < 8                                               → EINVAL
 *   flag bits outside {index, GET, SET, PROBE}              → EINVAL
 *   GET and SET without PROBE                               → EINVAL
 *   unknown feature index                                   → EINVAL (no driver-specific features)
 *   migration feature, no migration ops / DMA logging
 *     feature, no logging ops                               → ENOTTY
 *   GET/SET bit the feature does not support                → EINVAL
 *   PROBE                                                   → success; nothing executed; payload echoed
 *   neither GET nor SET                                     → EINVAL
 *   argsz − 8 < the feature's payload minimum               → EINVAL
 *
 * Replies carry the feature payload only (the caller owns the header): GET → the payload read back;
 * SET/PROBE → the request payload as copied back (MIG_DEVICE_STATE with data_fd filled in,
 * DMA_LOGGING_START with the page size actually chosen). A failed MIG_DEVICE_STATE SET still returns its
 * reply (data_fd −1, device_state echoing the request) as the kernel copies it back.
 */
import type { DmaLoggingScope } from "./backend.ts";
import type { DataSession } from "./data-session.ts";
import {
  DMA_LOGGING_MAX_BITMAP_BYTES,
  DMA_LOGGING_MAX_RANGES,
  dmaBitmapBytes,
  validateLoggingReport,
} from "./dma-logging.ts";
import { emitVfioEvent, VfioEvent } from "./events.ts";
import {
  DMA_LOGGING_CONTROL_BYTES,
  DMA_LOGGING_RANGE_BYTES,
  DMA_LOGGING_REPORT_BYTES,
  decodeDmaLoggingControl,
  decodeDmaLoggingReport,
  decodeDmaRanges,
  decodeMigDeviceState,
  encodeMigDeviceState,
  encodeU64,
  type FeatureDialect,
  MIG_DATA_SIZE_BYTES,
  MIG_DEVICE_STATE_BYTES,
  MIGRATION_BYTES,
  writeMigDeviceState,
} from "./feature-codec.ts";
import type { MigrationPortal } from "./portal.ts";
import {
  DeviceFeature,
  Errno,
  FEATURE_HEADER_BYTES,
  FeatureFlag,
  type MigState,
  NO_DATA_FD,
} from "./states.ts";

/** Caller memory reached through user pointers (kernel dialect of the DMA logging payloads). */
export interface UserMemory {
  /** A live view of `lengthBytes` bytes at `address`, or undefined if not accessible (→ EFAULT). */
  view(address: bigint, lengthBytes: number): Uint8Array | undefined;
}

export interface FeatureCallOptions {
  /**
   * `argsz` of the request, bytes (u32). Default: 8 + `payload.byteLength`. Over vfio-user a GET's argsz
   * may exceed the request to leave room for the reply (DMA_LOGGING_REPORT bitmap).
   */
  readonly argsz?: number;
  /** Payload layout of the DMA logging features. Default `"vfio-user"` (ranges and bitmap inline). */
  readonly dialect?: FeatureDialect;
  /**
   * The data_fd to write back when a SET opened a session. Default: none — data_fd is always written as
   * −1 (the bytes 0xffffffff that vfio-user peers expect).
   */
  readonly dataFdFor?: (session: DataSession) => number;
  /** Kernel dialect: resolves the `ranges` and `bitmap` user pointers. Default: none → EFAULT. */
  readonly userMemory?: UserMemory;
}

export type FeatureResult =
  | {
      readonly ok: true;
      /** Feature payload of the reply (without the 8-byte header). */
      readonly reply: Uint8Array;
      /** The data session a MIG_DEVICE_STATE SET opened, if any. */
      readonly session?: DataSession;
    }
  | {
      readonly ok: false;
      readonly errno: number;
      /** MIG_DEVICE_STATE SET only: the struct as copied back (data_fd −1). */
      readonly reply?: Uint8Array;
      /** MIG_DEVICE_STATE SET only: where the device is now. */
      readonly reachedState?: MigState;
    };

const { GET, SET, PROBE, MASK } = FeatureFlag;

interface FeatureSpec {
  /** GET and/or SET bits the feature supports. */
  readonly ops: number;
  /** Minimum payload bytes (argsz − 8) per dialect. */
  readonly minBytes: (d: FeatureDialect) => number;
  readonly needs: "migration" | "dma-logging";
}

const FEATURES: ReadonlyMap<number, FeatureSpec> = new Map<number, FeatureSpec>([
  [DeviceFeature.MIGRATION, { ops: GET, minBytes: () => MIGRATION_BYTES, needs: "migration" }],
  [
    DeviceFeature.MIG_DEVICE_STATE,
    { ops: GET | SET, minBytes: () => MIG_DEVICE_STATE_BYTES, needs: "migration" },
  ],
  [DeviceFeature.MIG_DATA_SIZE, { ops: GET, minBytes: () => MIG_DATA_SIZE_BYTES, needs: "migration" }],
  [
    DeviceFeature.DMA_LOGGING_START,
    { ops: SET, minBytes: (d) => DMA_LOGGING_CONTROL_BYTES[d], needs: "dma-logging" },
  ],
  [DeviceFeature.DMA_LOGGING_STOP, { ops: SET, minBytes: () => 0, needs: "dma-logging" }],
  [
    DeviceFeature.DMA_LOGGING_REPORT,
    { ops: GET, minBytes: (d) => DMA_LOGGING_REPORT_BYTES[d], needs: "dma-logging" },
  ],
]);

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}

export async function runDeviceFeature(
  portal: MigrationPortal,
  flags: number,
  payload: Uint8Array,
  options: FeatureCallOptions,
): Promise<FeatureResult> {
  const argsz = options.argsz ?? FEATURE_HEADER_BYTES + payload.byteLength;
  const dialect = options.dialect ?? "vfio-user";
  const reject = (errno: number, reason: string): FeatureResult => {
    emitVfioEvent(VfioEvent.featureRejected, portal.label, { flags, argsz, errno, reason });
    return { ok: false, errno };
  };

  if (!isU32(argsz) || argsz < FEATURE_HEADER_BYTES) return reject(Errno.EINVAL, "argsz below header");
  if (!isU32(flags) || (flags & ~(MASK | GET | SET | PROBE)) !== 0)
    return reject(Errno.EINVAL, "unknown flag bits");
  const probe = (flags & PROBE) !== 0;
  const get = (flags & GET) !== 0;
  const set = (flags & SET) !== 0;
  if (!probe && get && set) return reject(Errno.EINVAL, "GET and SET without PROBE");
  const index = flags & MASK;
  const spec = FEATURES.get(index);
  if (spec === undefined) return reject(Errno.EINVAL, `unknown feature ${index}`);
  if (spec.needs === "migration" ? !portal.hasMigration : !portal.hasDmaLogging) {
    return reject(Errno.ENOTTY, `no ${spec.needs} ops`);
  }
  if ((flags & (GET | SET) & ~spec.ops) !== 0)
    return reject(Errno.EINVAL, "operation not supported by feature");
  const dataBytes = argsz - FEATURE_HEADER_BYTES;
  const data = payload.subarray(0, Math.min(payload.byteLength, dataBytes));
  if (probe) return { ok: true, reply: data.slice() };
  if (!get && !set) return reject(Errno.EINVAL, "neither GET nor SET");
  if (dataBytes < spec.minBytes(dialect)) return reject(Errno.EINVAL, "payload below feature minimum");
  // argsz may promise more than the caller passed; what we must read has to be really there.
  const need = (n: number): boolean => data.byteLength >= n;

  switch (index) {
    case DeviceFeature.MIGRATION:
      return { ok: true, reply: encodeU64(BigInt(portal.migrationFlags)) };

    case DeviceFeature.MIG_DATA_SIZE: {
      const r = await portal.dataSize();
      return r.ok ? { ok: true, reply: encodeU64(r.stopCopyLength) } : reject(r.errno, "data size failed");
    }

    case DeviceFeature.MIG_DEVICE_STATE: {
      if (get) {
        const state = await portal.readState();
        return { ok: true, reply: encodeMigDeviceState({ deviceState: state, dataFd: NO_DATA_FD }) };
      }
      if (!need(MIG_DEVICE_STATE_BYTES)) return reject(Errno.EINVAL, "short MIG_DEVICE_STATE payload");
      const req = decodeMigDeviceState(data);
      const r = await portal.setState(req.deviceState);
      const reply = data.slice();
      if (!r.ok) {
        writeMigDeviceState(reply, { deviceState: req.deviceState, dataFd: NO_DATA_FD });
        return { ok: false, errno: r.errno, reply, reachedState: r.reachedState };
      }
      const dataFd =
        r.session !== undefined && options.dataFdFor !== undefined
          ? options.dataFdFor(r.session)
          : NO_DATA_FD;
      writeMigDeviceState(reply, { deviceState: req.deviceState, dataFd });
      return r.session === undefined ? { ok: true, reply } : { ok: true, reply, session: r.session };
    }

    case DeviceFeature.DMA_LOGGING_START: {
      const headerBytes = DMA_LOGGING_CONTROL_BYTES[dialect];
      if (!need(headerBytes)) return reject(Errno.EINVAL, "short DMA_LOGGING_START payload");
      const ctl = decodeDmaLoggingControl(data, dialect);
      if (ctl.numRanges > DMA_LOGGING_MAX_RANGES) return reject(Errno.E2BIG, "too many ranges");
      let scope: DmaLoggingScope;
      if (ctl.numRanges === 0) {
        if (dialect === "kernel") return reject(Errno.EINVAL, "num_ranges 0");
        scope = "all";
      } else {
        const rangeBytes = ctl.numRanges * DMA_LOGGING_RANGE_BYTES;
        let raw: Uint8Array | undefined;
        if (dialect === "kernel") {
          raw = options.userMemory?.view(ctl.rangesPtr, rangeBytes);
          if (raw === undefined || raw.byteLength < rangeBytes)
            return reject(Errno.EFAULT, "ranges not readable");
        } else {
          if (!need(headerBytes + rangeBytes)) return reject(Errno.EINVAL, "ranges beyond payload");
          raw = data.subarray(headerBytes, headerBytes + rangeBytes);
        }
        scope = decodeDmaRanges(raw, ctl.numRanges);
      }
      const r = await portal.dmaLoggingStart(scope, ctl.pageSize);
      if (!r.ok) return reject(r.errno, "DMA logging start refused");
      const reply = data.slice();
      new DataView(reply.buffer, reply.byteOffset, reply.byteLength).setBigUint64(0, r.pageSize, true);
      return { ok: true, reply };
    }

    case DeviceFeature.DMA_LOGGING_STOP: {
      const r = await portal.dmaLoggingStop();
      return r.ok ? { ok: true, reply: data.slice() } : reject(r.errno, "DMA logging stop refused");
    }

    case DeviceFeature.DMA_LOGGING_REPORT: {
      const headerBytes = DMA_LOGGING_REPORT_BYTES[dialect];
      if (!need(headerBytes)) return reject(Errno.EINVAL, "short DMA_LOGGING_REPORT payload");
      const rep = decodeDmaLoggingReport(data, dialect);
      const e = validateLoggingReport(rep.iova, rep.length, rep.pageSize);
      if (e !== 0) return reject(e, "bad report request");
      const bytes = dmaBitmapBytes(rep.length, rep.pageSize);
      if (bytes > BigInt(DMA_LOGGING_MAX_BITMAP_BYTES)) return reject(Errno.ENOMEM, "bitmap too large");
      const n = Number(bytes);
      if (dialect === "kernel") {
        const bitmap = options.userMemory?.view(rep.bitmapPtr, n);
        if (bitmap === undefined || bitmap.byteLength < n) return reject(Errno.EFAULT, "bitmap not writable");
        const r = await portal.dmaLoggingReport(rep.iova, rep.length, rep.pageSize, bitmap);
        return r.ok ? { ok: true, reply: data.slice() } : reject(r.errno, "DMA logging report refused");
      }
      if (dataBytes < headerBytes + n) return reject(Errno.EINVAL, "argsz leaves no room for the bitmap");
      const reply = new Uint8Array(headerBytes + n);
      reply.set(data.subarray(0, headerBytes));
      const r = await portal.dmaLoggingReport(
        rep.iova,
        rep.length,
        rep.pageSize,
        reply.subarray(headerBytes),
      );
      return r.ok ? { ok: true, reply } : reject(r.errno, "DMA logging report refused");
    }

    default:
      throw new Error(`feature ${index} listed but not dispatched`); // our bug
  }
}
