/**
 * The orchestrator's `DeviceEndpoint` for a function reached over vfio-user: the client side of VFIO
 * migration v2 (DEVICE_FEATURE, MIG_DATA_READ / MIG_DATA_WRITE, DEVICE_RESET) on a `VfioUserClient`.
 *
 *   orchestrator              endpoint (this module)                         vfio-user server → portal
 *     | migrationFlags() ──► DEVICE_FEATURE GET MIGRATION, argsz 16 ─────────► ◄── flags:u64
 *     | setState(S) ───────► DEVICE_FEATURE SET MIG_DEVICE_STATE {S, data_fd −1} ► ◄── request echoed
 *     |                      └ error reply (errno) → DEVICE_FEATURE GET MIG_DEVICE_STATE ► ◄── {reached, −1}
 *     | readData(n) ───────► MIG_DATA_READ min(n, max_data_xfer_size) … ─────► ◄── size ≤ asked + bytes
 *     |                      (again while a reply was full and n is not reached)
 *     | writeData(b) ──────► MIG_DATA_WRITE chunk … (b in max_data_xfer_size pieces) ► ◄── empty
 *     | precopyInfo() ─────  (nothing sent: vfio-user has no PRECOPY_INFO) → ENOTTY
 *     | dataSize() ────────► DEVICE_FEATURE GET MIG_DATA_SIZE, argsz 16 ─────► ◄── stop_copy_length:u64
 *     | dmaLoggingStart() ─► DEVICE_FEATURE SET DMA_LOGGING_START {page_size, num_ranges, 0} + ranges ►
 *     | dmaLoggingReport() ► DEVICE_FEATURE GET DMA_LOGGING_REPORT {iova, length, page_size},
 *     |                      argsz 8 + 24 + bitmap bytes (split in pieces of ≤ max_data_xfer_size bitmap
 *     |                      bytes) ──────────────────────────────────────────► ◄── header + bitmap
 *     | dmaLoggingStop() ──► DEVICE_FEATURE SET DMA_LOGGING_STOP (no data) ───►
 *     | reset() ───────────► DEVICE_RESET ────────────────────────────────────►
 *
 * Statuses: an error reply (`VfioUserError` code "remote-error") is the device's answer and becomes
 * `{ ok: false, errno }` — never a throw. Everything else the client rejects with (timeout, disconnected,
 * not-connected, bad-reply) is not a device status and is rethrown, as is a reply whose feature payload
 * does not match the request (a `VfioUserError` "bad-reply" of our own).
 *
 * Mapping notes:
 * * The wire cannot tell the temporary end of pre-copy data from the permanent end: the server answers
 *   an empty MIG_DATA_READ for both (kernel: ENOMSG vs 0). An empty reply is returned as an empty result
 *   (in PRE_COPY the orchestrator reads it as "nothing more now", as it does ENOMSG); an ENOMSG error
 *   reply from a server that sends one passes through as `{ ok: false, errno: 42 }`.
 * * `precopyInfo` has no vfio-user command: `{ ok: false, errno: ENOTTY }` (the orchestrator then
 *   treats the initial bytes as sent).
 * * `dmaLoggingStart` with an empty range list sends num_ranges 0, which vfio-user defines as "log
 *   every mapped range" (the kernel refuses 0 ranges with EINVAL).
 * * `migrationFlags` has no status to return: a device that refuses the MIGRATION feature (any errno)
 *   offers no migration, 0.
 * * `reset` has no status either: a refused DEVICE_RESET rejects with the client's `VfioUserError`
 *   (the device state is then unknown, which a caller must not mistake for success).
 *
 * Compatibility rule: the payloads are the vfio-user dialect of the Linux VFIO v2 uAPI (feature indexes
 * and state numbers are ABI; DMA logging ranges and bitmaps inline). Any server of protocol 0.x that
 * implements DEVICE_FEATURE (16) and MIG_DATA_READ/WRITE (17/18) is served; a server without them
 * answers error replies, which become errnos. Transfers never exceed the server's max_data_xfer_size
 * (nor, for bitmaps, its migration max_bitmap_size when it announces one).
 */
import { dmaBitmapBytes, isU64, validateLoggingReport } from "../../vfio/dma-logging.ts";
import {
  DMA_LOGGING_REPORT_BYTES,
  decodeMigDeviceState,
  decodeU64,
  encodeDmaLoggingControl,
  encodeDmaLoggingReport,
  encodeDmaRanges,
  encodeMigDeviceState,
  MIG_DATA_SIZE_BYTES,
  MIG_DEVICE_STATE_BYTES,
  MIGRATION_BYTES,
} from "../../vfio/feature-codec.ts";
import { DeviceFeature, Errno, FeatureFlag, MigState, NO_DATA_FD } from "../../vfio/states.ts";
import type { VfioUserClient } from "../../vfio-user/client.ts";
import { VfioUserError } from "../../vfio-user/errors.ts";
import { Errno as WireErrno } from "../../vfio-user/protocol/constants.ts";
import type { DeviceEndpoint, DeviceResult } from "../endpoints.ts";

const { GET, SET } = FeatureFlag;
const REPORT_HEADER_BYTES = DMA_LOGGING_REPORT_BYTES["vfio-user"];

type Failure = { readonly ok: false; readonly errno: number };

/** The device's errno if `e` is an error reply; rethrows anything else (not a device status). */
function remoteErrno(e: unknown): number {
  if (e instanceof VfioUserError && e.code === "remote-error") return e.errno;
  throw e;
}

function badReply(what: string): never {
  throw new VfioUserError("bad-reply", `${what} reply does not match the request`, { errno: WireErrno.EIO });
}

function concat(parts: readonly Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/**
 * `client` (connected, VERSION negotiated) as a `DeviceEndpoint`. The endpoint holds no state of its
 * own: every call is one or more requests on `client`, which stays the caller's to close.
 */
export function vfioUserDeviceEndpoint(client: VfioUserClient): DeviceEndpoint {
  /** Largest MIG_DATA_READ / MIG_DATA_WRITE size, bytes (the server's max_data_xfer_size). */
  const maxXferBytes = (): number => Math.max(1, client.serverCapabilities.maxDataXferSize);
  /** Largest bitmap of one DMA_LOGGING_REPORT reply, bytes: whole u64 words, at least one. */
  const maxBitmapBytes = (): number => {
    const caps = client.serverCapabilities;
    const limit = Math.min(caps.maxDataXferSize, caps.migration?.maxBitmapSize ?? Number.POSITIVE_INFINITY);
    return Math.max(8, Math.floor(limit / 8) * 8);
  };

  /** DEVICE_FEATURE; the reply's feature payload, or the device's errno. */
  const feature = async (
    flags: number,
    data?: Uint8Array,
    replyDataBytes = 0,
  ): Promise<Uint8Array | Failure> => {
    try {
      return (await client.deviceFeature(flags, data, replyDataBytes)).data;
    } catch (e) {
      return { ok: false, errno: remoteErrno(e) };
    }
  };

  /** GET MIG_DEVICE_STATE: where the device is, or ERROR when it does not say. */
  const readState = async (): Promise<number> => {
    const r = await feature(DeviceFeature.MIG_DEVICE_STATE | GET, undefined, MIG_DEVICE_STATE_BYTES);
    if (!(r instanceof Uint8Array)) return MigState.ERROR; // unknown: a reset is due
    if (r.byteLength < MIG_DEVICE_STATE_BYTES) badReply("GET MIG_DEVICE_STATE");
    return decodeMigDeviceState(r).deviceState;
  };

  /** One DMA_LOGGING_REPORT of `bitmapBytes` bitmap bytes, OR-ed into `bitmap` at byte `at`. */
  const reportOnce = async (
    iova: bigint,
    length: bigint,
    pageSize: bigint,
    bitmap: Uint8Array,
    at: number,
    bitmapBytes: number,
  ): Promise<DeviceResult> => {
    const header = encodeDmaLoggingReport({ iova, length, pageSize, bitmapPtr: 0n }, "vfio-user");
    const r = await feature(
      DeviceFeature.DMA_LOGGING_REPORT | GET,
      header,
      REPORT_HEADER_BYTES + bitmapBytes,
    );
    if (!(r instanceof Uint8Array)) return r;
    if (r.byteLength < REPORT_HEADER_BYTES + bitmapBytes) badReply("DMA_LOGGING_REPORT");
    const n = Math.min(bitmapBytes, bitmap.byteLength - at);
    for (let i = 0; i < n; i++) bitmap[at + i]! |= r[REPORT_HEADER_BYTES + i]!;
    return { ok: true };
  };

  return {
    async migrationFlags() {
      const r = await feature(DeviceFeature.MIGRATION | GET, undefined, MIGRATION_BYTES);
      if (!(r instanceof Uint8Array)) return 0;
      if (r.byteLength < MIGRATION_BYTES) badReply("GET MIGRATION");
      return Number(decodeU64(r) & 0xffff_ffffn);
    },

    async setState(target: MigState) {
      const req = encodeMigDeviceState({ deviceState: target, dataFd: NO_DATA_FD });
      const r = await feature(DeviceFeature.MIG_DEVICE_STATE | SET, req);
      if (!(r instanceof Uint8Array)) return { ok: false, errno: r.errno, reachedState: await readState() };
      if (r.byteLength < MIG_DEVICE_STATE_BYTES || decodeMigDeviceState(r).deviceState !== target >>> 0) {
        badReply("SET MIG_DEVICE_STATE");
      }
      return { ok: true };
    },

    async readData(maxBytes: number) {
      if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) return { ok: false, errno: Errno.EINVAL };
      const chunk = maxXferBytes();
      const parts: Uint8Array[] = [];
      let total = 0;
      do {
        const ask = Math.min(maxBytes - total, chunk);
        let got: Uint8Array;
        try {
          got = await client.migDataRead(ask);
        } catch (e) {
          const errno = remoteErrno(e);
          // Bytes already taken are returned; the condition recurs on the next read.
          if (total > 0) break;
          return { ok: false, errno };
        }
        if (got.byteLength > 0) parts.push(got);
        total += got.byteLength;
        if (got.byteLength < ask) break; // no more now (or the end)
      } while (total < maxBytes);
      return { ok: true, bytes: parts.length === 0 ? new Uint8Array(0) : concat(parts, total) };
    },

    async writeData(bytes: Uint8Array) {
      const chunk = maxXferBytes();
      let at = 0;
      do {
        const piece = bytes.subarray(at, at + chunk);
        try {
          await client.migDataWrite(piece);
        } catch (e) {
          return { ok: false, errno: remoteErrno(e) };
        }
        at += piece.byteLength;
      } while (at < bytes.byteLength);
      return { ok: true };
    },

    async precopyInfo() {
      return { ok: false, errno: Errno.ENOTTY };
    },

    async dataSize() {
      const r = await feature(DeviceFeature.MIG_DATA_SIZE | GET, undefined, MIG_DATA_SIZE_BYTES);
      if (!(r instanceof Uint8Array)) return r;
      if (r.byteLength < MIG_DATA_SIZE_BYTES) badReply("GET MIG_DATA_SIZE");
      return { ok: true, stopCopyLength: decodeU64(r) };
    },

    async dmaLoggingStart(ranges, pageSize) {
      if (!isU64(pageSize) || ranges.length > 0xffff_ffff) return { ok: false, errno: Errno.EINVAL };
      if (!ranges.every((x) => isU64(x.iova) && isU64(x.length))) return { ok: false, errno: Errno.EINVAL };
      const control = encodeDmaLoggingControl(
        { pageSize, numRanges: ranges.length, rangesPtr: 0n },
        "vfio-user",
      );
      const list = encodeDmaRanges(ranges);
      const data = new Uint8Array(control.byteLength + list.byteLength);
      data.set(control);
      data.set(list, control.byteLength);
      const r = await feature(DeviceFeature.DMA_LOGGING_START | SET, data);
      return r instanceof Uint8Array ? { ok: true } : r;
    },

    async dmaLoggingReport(iova, length, pageSize, bitmap) {
      // Values that do not fit the u64 fields cannot be sent; the bitmap rule is the portal's.
      if (!isU64(iova) || !isU64(length) || !isU64(pageSize)) return { ok: false, errno: Errno.EINVAL };
      const bytes = pageSize === 0n ? 0n : dmaBitmapBytes(length, pageSize);
      if (BigInt(bitmap.byteLength) < bytes) return { ok: false, errno: Errno.EINVAL };
      const limit = maxBitmapBytes();
      if (bytes <= BigInt(limit) || validateLoggingReport(iova, length, pageSize) !== 0) {
        // One request; an invalid one goes as asked and the device answers its errno.
        const n = bytes <= BigInt(limit) ? Number(bytes) : limit;
        return reportOnce(iova, length, pageSize, bitmap, 0, n);
      }
      // Pieces of `limit` bitmap bytes (a whole number of u64 words, so each lands word-aligned).
      const piecePages = BigInt(limit) * 8n;
      const pieceBytes = piecePages * pageSize;
      for (let offset = 0n, page = 0n; offset < length; offset += pieceBytes, page += piecePages) {
        const pieceLength = length - offset < pieceBytes ? length - offset : pieceBytes;
        const n = Number(dmaBitmapBytes(pieceLength, pageSize));
        const r = await reportOnce(iova + offset, pieceLength, pageSize, bitmap, Number(page / 8n), n);
        if (!r.ok) return r;
      }
      return { ok: true };
    },

    async dmaLoggingStop() {
      const r = await feature(DeviceFeature.DMA_LOGGING_STOP | SET);
      return r instanceof Uint8Array ? { ok: true } : r;
    },

    async reset() {
      await client.reset();
    },
  };
}
