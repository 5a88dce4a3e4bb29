/**
 * Command handlers of `VfioUserServer`, one per client → server command, in a table keyed by command
 * number. Each validates its message, calls the backend and returns what to reply. Internal to the
 * server (not API).
 *
 * errno choices (the client sees these in the error reply; the server keeps serving):
 *
 * | case                                                            | errno  |
 * |-----------------------------------------------------------------|--------|
 * | payload shorter than the command's structure, bad argsz/flags   | EINVAL |
 * | command other than VERSION before negotiation; VERSION twice    | EINVAL |
 * | VERSION with bad JSON / JSON not an object / bad capability     | EINVAL |
 * | VERSION with a major we do not speak (then the server closes)   | ENOTSUP|
 * | fds on a command that takes none; fd count not matching        | EINVAL |
 * | more fds than our max_msg_fds                                   | EINVAL |
 * | region/IRQ index unknown, region lacks READ/WRITE, access out of region bounds, count 0 | EINVAL |
 * | count above max_data_xfer_size (region access, migration data)  | E2BIG  |
 * | message larger than the message-size limit                      | E2BIG  |
 * | DMA_MAP overlapping an existing mapping                         | EEXIST |
 * | DMA_MAP beyond max_dma_maps                                     | ENOSPC |
 * | DMA_UNMAP not matching a mapping exactly                        | ENOENT |
 * | unknown command, GET_REGION_IO_FDS, WRITE_MULTI not negotiated, legacy dirty-bitmap unmap | ENOTSUP |
 * | DMA_READ / DMA_WRITE sent to the server (wrong direction)       | EINVAL |
 * | DEVICE_RESET with a payload                                     | EINVAL |
 * | backend threw                                                   | EIO    |
 * | backend refused                                                 | its errno |
 *
 * DMA_UNMAP carrying an fd (SPDK does this) is accepted: the fd is closed and the unmap proceeds.
 */
import type { Errno, MaybePromise, RegionDescription, VfioUserDeviceBackend } from "./device-backend.ts";
import type { DmaTable } from "./dma-table.ts";
import type { VfioUserEventName } from "./events.ts";
import { andThen, isPromiseLike } from "./maybe-promise.ts";
import {
  Command,
  DeviceFeatureFlag,
  DmaUnmapFlag,
  Errno as E,
  RegionFlag,
  SET_IRQS_DATA_MASK,
  SetIrqsFlag,
  VFIO_USER_MAJOR,
  VFIO_USER_MINOR,
} from "./protocol/constants.ts";
import { DEVICE_INFO_BYTES, decodeDeviceInfo, encodeDeviceInfo } from "./protocol/device-info.ts";
import { DMA_UNMAP_BYTES, decodeDmaMap, decodeDmaUnmap } from "./protocol/dma.ts";
import { DEVICE_FEATURE_BYTES, decodeDeviceFeatureRequest, encodeDeviceFeature } from "./protocol/feature.ts";
import type { MessageHeader } from "./protocol/header.ts";
import { decodeIrqInfo, decodeSetIrqs, encodeIrqInfo, IRQ_INFO_BYTES } from "./protocol/irq.ts";
import {
  decodeMigDataReadRequest,
  decodeMigDataWriteRequest,
  encodeMigData,
  MIG_DATA_BYTES,
} from "./protocol/mig-data.ts";
import {
  decodeRegionInfoRequest,
  decodeRegionReadRequest,
  decodeRegionWriteRequest,
  decodeWriteMulti,
  encodeRegionAccess,
  encodeRegionInfoReply,
  encodeWriteMultiReply,
  type RegionCap,
  sparseMmapCap,
} from "./protocol/region.ts";
import {
  decodeVersion,
  type EffectiveCapabilities,
  encodeVersion,
  negotiateVersion,
  type VersionCapabilities,
} from "./protocol/version.ts";
import { type DecodeError, isDecodeError } from "./protocol/wire.ts";

/** Limits the server enforces (resolved options). */
export interface ServerLimits {
  maxMsgFds: number;
  maxDataXferBytes: number;
  maxMessageBytes: number;
  /** Capabilities offered in the VERSION reply. */
  offer: VersionCapabilities;
}

/** Per-connection protocol state the handlers read and update. */
export interface SessionState {
  negotiated: boolean;
  peer: EffectiveCapabilities;
  writeMultiple: boolean;
  dma: DmaTable;
}

export interface CommandContext {
  readonly backend: VfioUserDeviceBackend;
  readonly limits: ServerLimits;
  readonly session: SessionState;
  readonly header: MessageHeader;
  readonly payload: Uint8Array;
  readonly fds: readonly number[];
  /** Hands the message's fds over to the backend: the server will not close them. */
  takeFds(): void;
}

export type CommandResult =
  | { kind: "ok"; payload?: Uint8Array; fds?: number[]; afterReply?: () => MaybePromise<void> }
  | { kind: "error"; errno: number; event: VfioUserEventName; detail?: string }
  /** Error reply (unless NO_REPLY), then close the connection. */
  | { kind: "close"; errno: number; event: VfioUserEventName; detail?: string };

type Handler = (ctx: CommandContext) => MaybePromise<CommandResult>;

/** How a command treats fds: none allowed, or validated by its handler. */
type FdPolicy = "none" | "handler";

const OK: CommandResult = { kind: "ok" };

function okWith(payload: Uint8Array): CommandResult {
  return { kind: "ok", payload };
}

function fail(errno: number, event: VfioUserEventName, detail?: string): CommandResult {
  return detail === undefined ? { kind: "error", errno, event } : { kind: "error", errno, event, detail };
}

function badPayload(e: DecodeError): CommandResult {
  return fail(e.errno, "bad-payload", e.reason);
}

function backendErrno(errno: Errno, what: string): CommandResult {
  return errno === 0 ? OK : fail(errno, "command-failed", what);
}

/** Checks a region access; returns the region or a failure. */
function checkRegionAccess(
  ctx: CommandContext,
  region: number,
  offset: number,
  count: number,
  need: number,
): RegionDescription | CommandResult {
  if (count > ctx.limits.maxDataXferBytes)
    return fail(E.E2BIG, "bad-payload", "count-over-max-data-xfer-size");
  if (count === 0) return fail(E.EINVAL, "bad-payload", "count-zero");
  if (region >= ctx.backend.deviceInfo().numRegions) return fail(E.EINVAL, "bad-payload", "region-index");
  const info = ctx.backend.regionInfo(region);
  if (info === undefined || (info.flags & need) === 0)
    return fail(E.EINVAL, "bad-payload", "region-access-flags");
  if (offset + count > info.sizeBytes) return fail(E.EINVAL, "bad-payload", "region-out-of-bounds");
  return info;
}

function isResult(x: RegionDescription | CommandResult): x is CommandResult {
  return "kind" in x;
}

const version: Handler = (ctx) => {
  if (ctx.session.negotiated) return fail(E.EINVAL, "version-rejected", "already-negotiated");
  const proposal = decodeVersion(ctx.payload);
  if (isDecodeError(proposal)) return fail(proposal.errno, "version-rejected", proposal.reason);
  const n = negotiateVersion(proposal, {
    major: VFIO_USER_MAJOR,
    minor: VFIO_USER_MINOR,
    capabilities: ctx.limits.offer,
  });
  if (n.kind === "reject-major") {
    return { kind: "close", errno: E.ENOTSUP, event: "version-rejected", detail: `major ${n.proposedMajor}` };
  }
  ctx.session.negotiated = true;
  ctx.session.peer = n.peer;
  ctx.session.writeMultiple = n.writeMultiple;
  return { kind: "ok", payload: encodeVersion(n.reply) };
};

const dmaMap: Handler = (ctx) => {
  const req = decodeDmaMap(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  if (ctx.fds.length > 1) return fail(E.EINVAL, "unexpected-fds", "dma-map-takes-one-fd");
  const fd = ctx.fds[0];
  const entry = { iova: req.address, sizeBytes: req.sizeBytes, flags: req.flags };
  const added = ctx.session.dma.add(entry);
  if (added !== 0) return fail(added, "command-failed", "dma-map-table");
  const mapping = { iova: req.address, sizeBytes: req.sizeBytes, flags: req.flags, fileOffset: req.offset };
  return andThen(ctx.backend.dmaMap(fd === undefined ? mapping : { ...mapping, fd }), (errno) => {
    if (errno !== 0) {
      ctx.session.dma.remove(req.address, req.sizeBytes);
      return fail(errno, "command-failed", "dma-map");
    }
    ctx.takeFds();
    return OK;
  });
};

const dmaUnmap: Handler = (ctx) => {
  const req = decodeDmaUnmap(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const echo = ctx.payload.slice(0, DMA_UNMAP_BYTES);
  if ((req.flags & DmaUnmapFlag.UNMAP_ALL) !== 0) {
    const all = [...ctx.session.dma.entries()];
    const step = (i: number): MaybePromise<CommandResult> => {
      const e = all[i];
      if (e === undefined) return { kind: "ok", payload: echo };
      return andThen(ctx.backend.dmaUnmap(e.iova, e.sizeBytes), (errno) => {
        if (errno !== 0) return fail(errno, "command-failed", "dma-unmap-all");
        ctx.session.dma.remove(e.iova, e.sizeBytes);
        return step(i + 1);
      });
    };
    return step(0);
  }
  if (ctx.session.dma.findExact(req.address, req.sizeBytes) === undefined) {
    return fail(E.ENOENT, "command-failed", "dma-unmap-no-such-mapping");
  }
  return andThen(ctx.backend.dmaUnmap(req.address, req.sizeBytes), (errno) => {
    if (errno !== 0) return fail(errno, "command-failed", "dma-unmap");
    ctx.session.dma.remove(req.address, req.sizeBytes);
    return okWith(echo);
  });
};

const deviceGetInfo: Handler = (ctx) => {
  const req = decodeDeviceInfo(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const info = ctx.backend.deviceInfo();
  return { kind: "ok", payload: encodeDeviceInfo({ argsz: DEVICE_INFO_BYTES, ...info }) };
};

const deviceGetRegionInfo: Handler = (ctx) => {
  const req = decodeRegionInfoRequest(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const info =
    req.index < ctx.backend.deviceInfo().numRegions ? ctx.backend.regionInfo(req.index) : undefined;
  if (info === undefined) return fail(E.EINVAL, "bad-payload", "region-index");
  const mmap = (info.flags & RegionFlag.MMAP) !== 0;
  const caps: RegionCap[] = mmap && info.sparseAreas !== undefined ? [sparseMmapCap(info.sparseAreas)] : [];
  const reply = encodeRegionInfoReply(
    { flags: info.flags, index: req.index, sizeBytes: info.sizeBytes, offset: info.mmapOffset ?? 0, caps },
    req.argsz,
  );
  const fds = !reply.truncated && mmap && info.mmapFd !== undefined ? [info.mmapFd] : [];
  return { kind: "ok", payload: reply.payload, fds };
};

const deviceGetIrqInfo: Handler = (ctx) => {
  const req = decodeIrqInfo(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const info = req.index < ctx.backend.deviceInfo().numIrqs ? ctx.backend.irqInfo(req.index) : undefined;
  if (info === undefined) return fail(E.EINVAL, "bad-payload", "irq-index");
  return {
    kind: "ok",
    payload: encodeIrqInfo({ argsz: IRQ_INFO_BYTES, flags: info.flags, index: req.index, count: info.count }),
  };
};

const deviceSetIrqs: Handler = (ctx) => {
  const req = decodeSetIrqs(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const info = req.index < ctx.backend.deviceInfo().numIrqs ? ctx.backend.irqInfo(req.index) : undefined;
  if (info === undefined) return fail(E.EINVAL, "bad-payload", "irq-index");
  const data = req.flags & SET_IRQS_DATA_MASK;
  if (req.count === 0) {
    if (data !== SetIrqsFlag.DATA_NONE || req.start !== 0)
      return fail(E.EINVAL, "bad-payload", "set-irqs-count-zero");
  } else if (req.start + req.count > info.count) {
    return fail(E.EINVAL, "bad-payload", "set-irqs-range");
  }
  if (data === SetIrqsFlag.DATA_EVENTFD) {
    if (ctx.fds.length !== 0 && ctx.fds.length !== req.count) {
      return fail(
        E.EINVAL,
        ctx.fds.length < req.count ? "missing-fds" : "unexpected-fds",
        "set-irqs-fd-count",
      );
    }
  } else if (ctx.fds.length !== 0) {
    return fail(E.EINVAL, "unexpected-fds", "set-irqs-fds-without-eventfd");
  }
  const request = {
    index: req.index,
    flags: req.flags,
    start: req.start,
    count: req.count,
    fds: [...ctx.fds],
  };
  const call = ctx.backend.setIrqs(req.bools === undefined ? request : { ...request, bools: req.bools });
  return andThen(call, (errno) => {
    if (errno === 0) ctx.takeFds();
    return backendErrno(errno, "set-irqs");
  });
};

const regionRead: Handler = (ctx) => {
  const req = decodeRegionReadRequest(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const region = checkRegionAccess(ctx, req.region, req.offset, req.count, RegionFlag.READ);
  if (isResult(region)) return region;
  return andThen(ctx.backend.regionRead(req.region, req.offset, req.count), (r) => {
    if (typeof r === "number") return fail(r === 0 ? E.EIO : r, "command-failed", "region-read");
    const data = r.byteLength > req.count ? r.subarray(0, req.count) : r;
    return okWith(encodeRegionAccess({ ...req, count: data.byteLength }, data));
  });
};

const regionWrite: Handler = (ctx) => {
  const req = decodeRegionWriteRequest(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  const region = checkRegionAccess(ctx, req.region, req.offset, req.count, RegionFlag.WRITE);
  if (isResult(region)) return region;
  return andThen(ctx.backend.regionWrite(req.region, req.offset, req.data), (r) => {
    const outcome = typeof r === "number" ? { errno: r } : r;
    if (outcome.errno !== 0) return fail(outcome.errno, "command-failed", "region-write");
    const payload = encodeRegionAccess({ offset: req.offset, region: req.region, count: req.count });
    const result: CommandResult = { kind: "ok", payload };
    if (outcome.afterReply !== undefined) result.afterReply = outcome.afterReply;
    return result;
  });
};

const regionWriteMulti: Handler = (ctx) => {
  if (!ctx.session.writeMultiple) return fail(E.ENOTSUP, "unknown-command", "write_multiple-not-negotiated");
  const entries = decodeWriteMulti(ctx.payload);
  if (isDecodeError(entries)) return badPayload(entries);
  const after: (() => MaybePromise<void>)[] = [];
  const step = (i: number): MaybePromise<CommandResult> => {
    const e = entries[i];
    if (e === undefined) {
      const result: CommandResult = { kind: "ok", payload: encodeWriteMultiReply(entries.length) };
      if (after.length > 0) {
        result.afterReply = () => {
          const pending = after.map((f) => f()).filter(isPromiseLike);
          return pending.length > 0 ? Promise.all(pending).then(() => undefined) : undefined;
        };
      }
      return result;
    }
    const region = checkRegionAccess(ctx, e.region, e.offset, e.count, RegionFlag.WRITE);
    if (isResult(region)) return region;
    return andThen(ctx.backend.regionWrite(e.region, e.offset, e.data), (r) => {
      const outcome = typeof r === "number" ? { errno: r } : r;
      if (outcome.errno !== 0) return fail(outcome.errno, "command-failed", "region-write-multi");
      if (outcome.afterReply !== undefined) after.push(outcome.afterReply);
      return step(i + 1);
    });
  };
  return step(0);
};

const deviceReset: Handler = (ctx) => {
  if (ctx.payload.byteLength !== 0) return fail(E.EINVAL, "bad-payload", "reset-has-payload");
  return andThen(ctx.backend.reset(), (errno) => backendErrno(errno, "reset"));
};

const deviceFeature: Handler = (ctx) => {
  const req = decodeDeviceFeatureRequest(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  return andThen(ctx.backend.feature(req.flags, req.data), (r) => {
    if ("errno" in r) return fail(r.errno === 0 ? E.EIO : r.errno, "command-failed", "device-feature");
    const isGet = (req.flags & DeviceFeatureFlag.GET) !== 0 && (req.flags & DeviceFeatureFlag.PROBE) === 0;
    if (!isGet)
      return {
        kind: "ok",
        payload: encodeDeviceFeature({ argsz: req.argsz, flags: req.flags, data: r.data }),
      };
    const needed = DEVICE_FEATURE_BYTES + r.data.byteLength;
    const payload =
      needed > req.argsz
        ? encodeDeviceFeature({ argsz: needed, flags: req.flags })
        : encodeDeviceFeature({ argsz: needed, flags: req.flags, data: r.data });
    return okWith(payload);
  });
};

const migDataRead: Handler = (ctx) => {
  const req = decodeMigDataReadRequest(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  if (req.sizeBytes > ctx.limits.maxDataXferBytes)
    return fail(E.E2BIG, "bad-payload", "size-over-max-data-xfer-size");
  return andThen(ctx.backend.migDataRead(req.sizeBytes), (r) => {
    if (typeof r === "number") return fail(r === 0 ? E.EIO : r, "command-failed", "mig-data-read");
    const data = r.byteLength > req.sizeBytes ? r.subarray(0, req.sizeBytes) : r;
    const payload = encodeMigData({
      argsz: MIG_DATA_BYTES + data.byteLength,
      sizeBytes: data.byteLength,
      data,
    });
    return okWith(payload);
  });
};

const migDataWrite: Handler = (ctx) => {
  const req = decodeMigDataWriteRequest(ctx.payload);
  if (isDecodeError(req)) return badPayload(req);
  if (req.sizeBytes > ctx.limits.maxDataXferBytes)
    return fail(E.E2BIG, "bad-payload", "size-over-max-data-xfer-size");
  return andThen(ctx.backend.migDataWrite(req.data), (errno) => backendErrno(errno, "mig-data-write"));
};

const wrongDirection: Handler = () => fail(E.EINVAL, "wrong-direction", "server-to-client-command");
const notImplemented: Handler = () => fail(E.ENOTSUP, "unknown-command", "not-implemented");

/** The dispatch table: command → handler and fd policy. Commands absent here get ENOTSUP. */
export const COMMAND_TABLE: ReadonlyMap<number, { handler: Handler; fds: FdPolicy }> = new Map([
  [Command.VERSION, { handler: version, fds: "none" }],
  [Command.DMA_MAP, { handler: dmaMap, fds: "handler" }],
  // fds on DMA_UNMAP are tolerated (and closed): SPDK's client sends the mapping's fd again.
  [Command.DMA_UNMAP, { handler: dmaUnmap, fds: "handler" }],
  [Command.DEVICE_GET_INFO, { handler: deviceGetInfo, fds: "none" }],
  [Command.DEVICE_GET_REGION_INFO, { handler: deviceGetRegionInfo, fds: "none" }],
  [Command.DEVICE_GET_REGION_IO_FDS, { handler: notImplemented, fds: "none" }],
  [Command.DEVICE_GET_IRQ_INFO, { handler: deviceGetIrqInfo, fds: "none" }],
  [Command.DEVICE_SET_IRQS, { handler: deviceSetIrqs, fds: "handler" }],
  [Command.REGION_READ, { handler: regionRead, fds: "none" }],
  [Command.REGION_WRITE, { handler: regionWrite, fds: "none" }],
  [Command.DMA_READ, { handler: wrongDirection, fds: "none" }],
  [Command.DMA_WRITE, { handler: wrongDirection, fds: "none" }],
  [Command.DEVICE_RESET, { handler: deviceReset, fds: "none" }],
  [Command.REGION_WRITE_MULTI, { handler: regionWriteMulti, fds: "none" }],
  [Command.DEVICE_FEATURE, { handler: deviceFeature, fds: "none" }],
  [Command.MIG_DATA_READ, { handler: migDataRead, fds: "none" }],
  [Command.MIG_DATA_WRITE, { handler: migDataWrite, fds: "none" }],
]);
