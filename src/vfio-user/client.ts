/**
 * vfio-user client (the VMM side) over a `MessageTransport`: typed methods for every client → server
 * command, replies matched by id, pipelining allowed, and service of the server's DMA_READ/DMA_WRITE.
 *
 *   client                                   server
 *     | VERSION 0.2 {max_msg_fds, max_data_xfer_size, …} ──► |
 *     | ◄── VERSION 0.m {caps}      (major must be 0, minor ≤ 2, else negotiation-failed + close)
 *     | DMA_MAP … REGION_READ … (several in flight; each promise settles with its own reply)
 *     | ◄── DMA_READ (server's id space)     → the range's registered buffer, else onDmaRead → reply
 *
 * Failures reject with `VfioUserError`: `remote-error` (error reply; `errno` is the server's),
 * `timeout`, `disconnected`, `bad-reply`, `not-connected`, `negotiation-failed`.
 *
 * Server commands are validated before the VMM's handler runs: DMA outside every range this client
 * mapped (or without READ/WRITE permission) is answered EFAULT; a count above our
 * max_data_xfer_size E2BIG; no handler ENOTSUP. They are served one at a time, in order. A mapping
 * made with a `buffer` (`dmaMap`, typically fd-less: the server can reach it only by message) is served
 * from that buffer directly; other mappings go to `onDmaRead` / `onDmaWrite`.
 *
 * Fd ownership: fds given to a method stay the caller's (the transport duplicates them). An fd
 * returned by `regionInfo` belongs to the caller. Other fds a server sends are closed.
 *
 * Compatibility: proposes 0.2; accepts any server minor ≤ 2.
 */
import { closeSync } from "node:fs";
import type { DeviceInfo, Errno as ErrnoValue, IrqInfo, MaybePromise } from "./device-backend.ts";
import { DmaTable, type DmaTableEntry } from "./dma-table.ts";
import { VfioUserError } from "./errors.ts";
import type { VfioUserEvent, VfioUserLog } from "./events.ts";
import {
  Command,
  DmaMapFlag,
  DmaUnmapFlag,
  Errno,
  RegionCapId,
  SetIrqsFlag,
  VFIO_USER_MAJOR,
  VFIO_USER_MINOR,
} from "./protocol/constants.ts";
import { decodeDeviceInfo, encodeDeviceInfoRequest } from "./protocol/device-info.ts";
import {
  decodeDmaReadRequest,
  decodeDmaUnmap,
  decodeDmaWriteRequest,
  encodeDmaAccess,
  encodeDmaMap,
  encodeDmaUnmap,
} from "./protocol/dma.ts";
import { DEVICE_FEATURE_BYTES, decodeDeviceFeatureReply, encodeDeviceFeature } from "./protocol/feature.ts";
import {
  decodeHeader,
  encodeCommand,
  encodeErrorReply,
  encodeReply,
  hasError,
  hasNoReply,
  isReply,
  type MessageHeader,
  messageType,
  payloadOf,
} from "./protocol/header.ts";
import { decodeIrqInfo, encodeIrqInfo, encodeSetIrqs, IRQ_INFO_BYTES } from "./protocol/irq.ts";
import { decodeMigDataReadReply, encodeMigData, MIG_DATA_BYTES } from "./protocol/mig-data.ts";
import {
  decodeRegionInfoReply,
  decodeRegionReadReply,
  decodeRegionWriteReply,
  decodeWriteMultiReply,
  encodeRegionAccess,
  encodeRegionInfoRequest,
  encodeWriteMulti,
  REGION_INFO_BYTES,
  type RegionCap,
  type SparseMmapArea,
  type WriteMultiEntry,
} from "./protocol/region.ts";
import {
  decodeVersion,
  type EffectiveCapabilities,
  encodeVersion,
  type VersionCapabilities,
  withDefaults,
} from "./protocol/version.ts";
import { type DecodeError, isDecodeError } from "./protocol/wire.ts";
import { type RequestHooks, RequestTracker } from "./request-tracker.ts";
import type { MessageTransport, TransportMessage } from "./transport.ts";

export interface VfioUserClientOptions {
  /** Most fds we accept per message; announced as max_msg_fds. Default 8. */
  maxMsgFds?: number;
  /** Largest DMA_READ/DMA_WRITE count we serve; announced as max_data_xfer_size. Default 1048576 bytes. */
  maxDataXferBytes?: number;
  /** Minor version proposed. Default 2. */
  minor?: number;
  /** Further capabilities to propose (pgsizes, max_dma_maps, migration, write_multiple). Default none. */
  capabilities?: VersionCapabilities;
  /** Time to wait for each reply, ms. Default 5000 (QEMU's x-msg-timeout); 0 = wait forever. */
  replyTimeoutMs?: number;
  /**
   * argsz of the first DEVICE_GET_REGION_INFO; a larger need is met by one retry with the argsz the
   * server asks for. Default 32 (the bare struct, as QEMU starts), ≥ 32.
   */
  regionInfoArgszBytes?: number;
  /** Serves the server's DMA_READ: `count` bytes at `iova`, or an errno. Default: none (ENOTSUP). */
  onDmaRead?: (iova: number, count: number) => MaybePromise<Uint8Array | ErrnoValue>;
  /** Serves the server's DMA_WRITE: 0 or an errno. Default: none (ENOTSUP). */
  onDmaWrite?: (iova: number, data: Uint8Array) => MaybePromise<ErrnoValue>;
  /** Closes fds the client receives and does not keep. Default `fs.closeSync`, errors ignored. */
  closeFd?: (fd: number) => void;
  /** Receives log events. Default: discarded. */
  log?: VfioUserLog;
}

/** A reply as received (for `request`). */
export interface ReplyMessage {
  header: MessageHeader;
  payload: Uint8Array;
  /** fds that came with the reply; owned by the caller. */
  fds: number[];
}

export interface RegionInfoResult {
  index: number;
  /** `RegionFlag` bits. */
  flags: number;
  sizeBytes: number;
  /** mmap offset of the region in `fd`. */
  offset: number;
  /** Areas of the sparse-mmap capability, when present. */
  sparseAreas?: SparseMmapArea[];
  caps: RegionCap[];
  /** fd to mmap (MMAP regions); owned by the caller. */
  fd?: number;
}

export interface DeviceFeatureReply {
  argsz: number;
  flags: number;
  data: Uint8Array;
}

/** A mapping as the client keeps it. */
interface MapEntry extends DmaTableEntry {
  /** Guest memory of the range (`sizeBytes` long), served to DMA_READ / DMA_WRITE directly. */
  buffer?: Uint8Array;
}

/** Largest message the client accepts (header included). */
const CLIENT_MAX_MESSAGE_BYTES = 64 * 1048576 + 4096;

function defaultCloseFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed or never valid
  }
}

export class VfioUserClient {
  readonly #transport: MessageTransport;
  readonly #options: VfioUserClientOptions;
  readonly #closeFd: (fd: number) => void;
  readonly #timeoutMs: number;
  readonly #maxDataXferBytes: number;
  readonly #requests: RequestTracker;
  readonly #maps = new DmaTable<MapEntry>();
  /** Ids for NO_REPLY commands (nothing is matched against them). */
  #postedId = 0x8000;
  #serverCommands: Promise<void> = Promise.resolve();
  #closeHandlers: (() => void)[] = [];
  #open = true;
  #serverVersion = { major: VFIO_USER_MAJOR, minor: 0 };
  #serverCaps: EffectiveCapabilities = withDefaults(undefined);

  private constructor(transport: MessageTransport, options: VfioUserClientOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#closeFd = options.closeFd ?? defaultCloseFd;
    this.#timeoutMs = options.replyTimeoutMs ?? 5000;
    this.#maxDataXferBytes = options.maxDataXferBytes ?? 1048576;
    this.#requests = new RequestTracker(this.#timeoutMs);
    transport.onMessage((m) => this.#onMessage(m));
    transport.onClose(() => this.#onClosed());
  }

  /** Attaches to `transport` and negotiates VERSION. Closes the transport if negotiation fails. */
  static async connect(
    transport: MessageTransport,
    options: VfioUserClientOptions = {},
  ): Promise<VfioUserClient> {
    const c = new VfioUserClient(transport, options);
    const minor = options.minor ?? VFIO_USER_MINOR;
    const caps: VersionCapabilities = {
      ...options.capabilities,
      maxMsgFds: options.maxMsgFds ?? 8,
      maxDataXferSize: c.#maxDataXferBytes,
    };
    const reply = await c.request(
      Command.VERSION,
      encodeVersion({ major: VFIO_USER_MAJOR, minor, capabilities: caps }),
    );
    c.#closeFds(reply.fds);
    const v = decodeVersion(reply.payload);
    const fail = (why: string): never => {
      c.close();
      throw new VfioUserError("negotiation-failed", `VERSION reply refused: ${why}`, { errno: Errno.EINVAL });
    };
    if (isDecodeError(v)) return fail(v.reason);
    if (v.major !== VFIO_USER_MAJOR) return fail(`major ${v.major}`);
    if (v.minor > minor) return fail(`minor ${v.minor} above proposed ${minor}`);
    c.#serverVersion = { major: v.major, minor: v.minor };
    c.#serverCaps = withDefaults(v.capabilities);
    return c;
  }

  get serverVersion(): { major: number; minor: number } {
    return { ...this.#serverVersion };
  }

  /** The server's capabilities with spec defaults applied. */
  get serverCapabilities(): EffectiveCapabilities {
    return this.#serverCaps;
  }

  get isOpen(): boolean {
    return this.#open;
  }

  onClose(handler: () => void): void {
    this.#closeHandlers.push(handler);
  }

  close(): void {
    this.#transport.close();
    this.#onClosed();
  }

  /**
   * Sends one command and resolves with its reply (rejects on an error reply). Lower level than the
   * typed methods; `noReply` resolves at once with an empty reply.
   */
  request(
    command: number,
    payload?: Uint8Array,
    opts: { fds?: number[]; noReply?: boolean } = {},
    hooks: RequestHooks = {},
  ): Promise<ReplyMessage> {
    if (!this.#open) {
      return Promise.reject(
        new VfioUserError("not-connected", "connection closed", { errno: Errno.ENOTCONN }),
      );
    }
    const fds = opts.fds ?? [];
    if (opts.noReply === true) {
      const id = this.#postedId;
      this.#postedId = (id + 1) & 0xffff;
      this.#transport.send(encodeCommand(id, command, payload, true), fds);
      hooks.onSuccess?.();
      return Promise.resolve({
        header: { id, command, sizeBytes: 16, flags: 1, errno: 0 },
        payload: new Uint8Array(0),
        fds: [],
      });
    }
    const send = (id: number) => this.#transport.send(encodeCommand(id, command, payload), fds);
    return this.#requests.start(command, send, hooks);
  }

  // ---------------------------------------------------------------- typed commands

  /**
   * DMA_MAP; `fd` (optional) backs `[fileOffset, fileOffset + sizeBytes)`. flags default READ|WRITE.
   * `buffer` (optional, exactly `sizeBytes` long, kept by reference) is the range's memory on this side:
   * the server's DMA_READ / DMA_WRITE inside the range are served from it (not by `onDmaRead` /
   * `onDmaWrite`). A buffer of another length rejects with `invalid-request` (EINVAL), nothing sent.
   */
  async dmaMap(m: {
    iova: number;
    sizeBytes: number;
    flags?: number;
    fd?: number;
    fileOffset?: number;
    buffer?: Uint8Array;
  }): Promise<void> {
    const flags = m.flags ?? DmaMapFlag.READ | DmaMapFlag.WRITE;
    if (m.buffer !== undefined && m.buffer.byteLength !== m.sizeBytes) {
      throw new VfioUserError("invalid-request", "DMA_MAP buffer length differs from the size", {
        errno: Errno.EINVAL,
      });
    }
    const entry: MapEntry = { iova: m.iova, sizeBytes: m.sizeBytes, flags };
    if (m.buffer !== undefined) entry.buffer = m.buffer;
    const payload = encodeDmaMap({
      flags,
      offset: m.fileOffset ?? 0,
      address: m.iova,
      sizeBytes: m.sizeBytes,
    });
    // Known before the reply, so DMA the server issues right after mapping finds the range.
    const added = this.#maps.add(entry) === 0;
    const r = await this.request(
      Command.DMA_MAP,
      payload,
      { fds: m.fd === undefined ? [] : [m.fd] },
      { onError: () => added && this.#maps.remove(m.iova, m.sizeBytes) },
    );
    this.#closeFds(r.fds);
  }

  /** DMA_UNMAP of exactly one earlier mapping. */
  async dmaUnmap(iova: number, sizeBytes: number): Promise<void> {
    await this.#unmap(0, iova, sizeBytes, () => this.#maps.remove(iova, sizeBytes));
  }

  /** DMA_UNMAP with UNMAP_ALL. */
  async dmaUnmapAll(): Promise<void> {
    await this.#unmap(DmaUnmapFlag.UNMAP_ALL, 0, 0, () => this.#maps.clear());
  }

  async #unmap(flags: number, iova: number, sizeBytes: number, onSuccess: () => void): Promise<void> {
    const r = await this.request(
      Command.DMA_UNMAP,
      encodeDmaUnmap({ flags, address: iova, sizeBytes }),
      {},
      { onSuccess },
    );
    this.#closeFds(r.fds);
    const echo = decodeDmaUnmap(r.payload);
    if (r.payload.byteLength !== 0 && isDecodeError(echo)) this.#badReply("DMA_UNMAP", echo);
  }

  async deviceGetInfo(): Promise<DeviceInfo> {
    const r = await this.#plain(Command.DEVICE_GET_INFO, encodeDeviceInfoRequest());
    const info = decodeDeviceInfo(r.payload);
    if (isDecodeError(info)) return this.#badReply("DEVICE_GET_INFO", info);
    return { flags: info.flags, numRegions: info.numRegions, numIrqs: info.numIrqs };
  }

  /** DEVICE_GET_REGION_INFO with the argsz retry: if the reply needs more, ask once more with that argsz. */
  async regionInfo(index: number): Promise<RegionInfoResult> {
    let argsz = Math.max(REGION_INFO_BYTES, this.#options.regionInfoArgszBytes ?? REGION_INFO_BYTES);
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await this.request(Command.DEVICE_GET_REGION_INFO, encodeRegionInfoRequest(index, argsz));
      const info = decodeRegionInfoReply(r.payload);
      if (isDecodeError(info)) {
        this.#closeFds(r.fds);
        return this.#badReply("DEVICE_GET_REGION_INFO", info);
      }
      if (info.argsz > argsz) {
        this.#closeFds(r.fds); // a truncated reply carries no usable fd
        argsz = info.argsz;
        continue;
      }
      const [fd, ...extra] = r.fds;
      this.#closeFds(extra);
      const result: RegionInfoResult = {
        index: info.index,
        flags: info.flags,
        sizeBytes: info.sizeBytes,
        offset: info.offset,
        caps: info.caps,
      };
      const sparse = info.caps.find((c) => c.id === RegionCapId.SPARSE_MMAP);
      if (sparse !== undefined && "areas" in sparse) result.sparseAreas = sparse.areas;
      if (fd !== undefined) result.fd = fd;
      return result;
    }
    throw new VfioUserError("bad-reply", "DEVICE_GET_REGION_INFO argsz grew on retry", { errno: Errno.EIO });
  }

  /** REGION_READ; the result may be shorter than `count` (short read). */
  async regionRead(index: number, offset: number, count: number): Promise<Uint8Array> {
    const r = await this.#plain(Command.REGION_READ, encodeRegionAccess({ offset, region: index, count }));
    const rep = decodeRegionReadReply(r.payload);
    if (isDecodeError(rep)) return this.#badReply("REGION_READ", rep);
    if (rep.count > count) {
      return this.#badReply("REGION_READ", {
        kind: "decode-error",
        errno: Errno.E2BIG,
        reason: "more-than-asked",
      });
    }
    return rep.data.slice();
  }

  /** REGION_WRITE; `posted` sends it with NO_REPLY and resolves at once. */
  async regionWrite(
    index: number,
    offset: number,
    data: Uint8Array,
    opts: { posted?: boolean } = {},
  ): Promise<void> {
    const payload = encodeRegionAccess({ offset, region: index, count: data.byteLength }, data);
    if (opts.posted === true) {
      await this.request(Command.REGION_WRITE, payload, { noReply: true });
      return;
    }
    const r = await this.#plain(Command.REGION_WRITE, payload);
    const rep = decodeRegionWriteReply(r.payload);
    if (isDecodeError(rep)) this.#badReply("REGION_WRITE", rep);
  }

  /** REGION_WRITE_MULTI (only if the server offered write_multiple); each entry ≤ 8 bytes. */
  async regionWriteMulti(entries: WriteMultiEntry[]): Promise<number> {
    const r = await this.#plain(Command.REGION_WRITE_MULTI, encodeWriteMulti(entries));
    const n = decodeWriteMultiReply(r.payload);
    if (isDecodeError(n)) return this.#badReply("REGION_WRITE_MULTI", n);
    return n;
  }

  async irqInfo(index: number): Promise<IrqInfo & { index: number }> {
    const r = await this.#plain(
      Command.DEVICE_GET_IRQ_INFO,
      encodeIrqInfo({ argsz: IRQ_INFO_BYTES, flags: 0, index, count: 0 }),
    );
    const info = decodeIrqInfo(r.payload);
    if (isDecodeError(info)) return this.#badReply("DEVICE_GET_IRQ_INFO", info);
    return { index: info.index, flags: info.flags, count: info.count };
  }

  /**
   * Binds eventfds to sub-indexes `start …` of IRQ `index` (DATA_EVENTFD | `action`, default
   * TRIGGER). An entry of -1 de-assigns that sub-index. Sent in chunks of at most the server's
   * max_msg_fds, each all-valid or all -1 (as QEMU does).
   */
  async setIrqs(
    index: number,
    start: number,
    eventfds: number[],
    action: number = SetIrqsFlag.ACTION_TRIGGER,
  ): Promise<void> {
    const flags = SetIrqsFlag.DATA_EVENTFD | action;
    const max = Math.max(1, this.#serverCaps.maxMsgFds);
    let i = 0;
    while (i < eventfds.length) {
      const valid = eventfds[i]! >= 0;
      let n = 1;
      while (i + n < eventfds.length && n < max && eventfds[i + n]! >= 0 === valid) n++;
      const fds = valid ? eventfds.slice(i, i + n) : [];
      await this.setIrqsRaw({ flags, index, start: start + i, count: n, fds });
      i += n;
    }
  }

  /** DEVICE_SET_IRQS with any flags (mask/unmask/trigger, DATA_NONE/BOOL/EVENTFD). */
  async setIrqsRaw(r: {
    flags: number;
    index: number;
    start: number;
    count: number;
    fds?: number[];
    bools?: Uint8Array;
  }): Promise<void> {
    await this.#plain(Command.DEVICE_SET_IRQS, encodeSetIrqs(r), r.fds ?? []);
  }

  /** Disables every interrupt of `index` (DATA_NONE | ACTION_TRIGGER, start = count = 0). */
  async disableIrqs(index: number): Promise<void> {
    await this.setIrqsRaw({
      flags: SetIrqsFlag.DATA_NONE | SetIrqsFlag.ACTION_TRIGGER,
      index,
      start: 0,
      count: 0,
    });
  }

  async reset(): Promise<void> {
    await this.#plain(Command.DEVICE_RESET);
  }

  /**
   * DEVICE_FEATURE. argsz = 8 + max(data length, `replyDataBytes`); a GET reply that does not fit is
   * retried once with the argsz the server asks for.
   */
  async deviceFeature(flags: number, data?: Uint8Array, replyDataBytes = 0): Promise<DeviceFeatureReply> {
    let argsz = DEVICE_FEATURE_BYTES + Math.max(data?.byteLength ?? 0, replyDataBytes);
    for (let attempt = 0; attempt < 2; attempt++) {
      const req = data === undefined ? { argsz, flags } : { argsz, flags, data };
      const r = await this.#plain(Command.DEVICE_FEATURE, encodeDeviceFeature(req));
      const rep = decodeDeviceFeatureReply(r.payload);
      if (isDecodeError(rep)) return this.#badReply("DEVICE_FEATURE", rep);
      if (rep.argsz > argsz && rep.argsz > r.payload.byteLength) {
        argsz = rep.argsz;
        continue;
      }
      return { argsz: rep.argsz, flags: rep.flags, data: rep.data.slice() };
    }
    throw new VfioUserError("bad-reply", "DEVICE_FEATURE argsz grew on retry", { errno: Errno.EIO });
  }

  /** MIG_DATA_READ: up to `sizeBytes`; fewer means no more data for now. */
  async migDataRead(sizeBytes: number): Promise<Uint8Array> {
    const r = await this.#plain(
      Command.MIG_DATA_READ,
      encodeMigData({ argsz: MIG_DATA_BYTES + sizeBytes, sizeBytes }),
    );
    const rep = decodeMigDataReadReply(r.payload);
    if (isDecodeError(rep)) return this.#badReply("MIG_DATA_READ", rep);
    if (rep.sizeBytes > sizeBytes) {
      return this.#badReply("MIG_DATA_READ", {
        kind: "decode-error",
        errno: Errno.E2BIG,
        reason: "more-than-asked",
      });
    }
    return rep.data.slice();
  }

  async migDataWrite(bytes: Uint8Array): Promise<void> {
    await this.#plain(
      Command.MIG_DATA_WRITE,
      encodeMigData({ argsz: MIG_DATA_BYTES, sizeBytes: bytes.byteLength, data: bytes }),
    );
  }

  // ---------------------------------------------------------------- internals

  /** A request whose reply must carry no fds (any that come are closed). */
  async #plain(command: number, payload?: Uint8Array, fds: number[] = []): Promise<ReplyMessage> {
    const r = await this.request(command, payload, { fds });
    this.#closeFds(r.fds);
    return r;
  }

  #badReply(what: string, e: DecodeError): never {
    throw new VfioUserError("bad-reply", `${what} reply malformed: ${e.reason}`, { errno: e.errno });
  }

  #onMessage(m: TransportMessage): void {
    const h = decodeHeader(m.bytes);
    if (isDecodeError(h) || h.sizeBytes !== m.bytes.byteLength || h.sizeBytes > CLIENT_MAX_MESSAGE_BYTES) {
      this.#closeFds(m.fds);
      this.#emit({ name: isDecodeError(h) ? "header-truncated" : "size-mismatch", level: "error" });
      this.close();
      return;
    }
    const payload = payloadOf(m.bytes);
    if (isReply(h.flags)) {
      if (!this.#requests.settle({ header: h, payload, fds: m.fds })) {
        this.#closeFds(m.fds);
        this.#emit({ name: "reply-unmatched", level: "warn", id: h.id, command: h.command });
      } else if (hasError(h.flags)) {
        this.#closeFds(m.fds);
      }
      return;
    }
    this.#closeFds(m.fds);
    // Server commands run in order, one at a time (their handlers may be asynchronous).
    this.#serverCommands = this.#serverCommands.then(() => this.#serveCommand(h, payload));
  }

  async #serveCommand(h: MessageHeader, payload: Uint8Array): Promise<void> {
    let reply: Uint8Array;
    try {
      reply = await this.#answer(h, payload);
    } catch (e) {
      this.#emit({ name: "backend-threw", level: "error", id: h.id, command: h.command, detail: String(e) });
      reply = encodeErrorReply(h.id, h.command, Errno.EIO);
    }
    if (this.#open && !hasNoReply(h.flags)) this.#transport.send(reply, []);
  }

  async #answer(h: MessageHeader, payload: Uint8Array): Promise<Uint8Array> {
    const err = (errno: number, name: VfioUserEvent["name"], detail?: string): Uint8Array => {
      this.#emit({ name, level: "warn", id: h.id, command: h.command, errno, ...(detail ? { detail } : {}) });
      return encodeErrorReply(h.id, h.command, errno);
    };
    if (messageType(h.flags) !== 0) return err(Errno.EINVAL, "unknown-type");
    if (h.command === Command.DMA_READ) {
      const req = decodeDmaReadRequest(payload);
      if (isDecodeError(req)) return err(req.errno, "bad-payload", req.reason);
      if (req.count > this.#maxDataXferBytes) return err(Errno.E2BIG, "bad-payload", "count-over-max");
      const map = this.#mapped(req.address, req.count, DmaMapFlag.READ);
      if (map === undefined) return err(Errno.EFAULT, "command-failed", "unmapped");
      if (map.buffer !== undefined) {
        const at = req.address - map.iova;
        const data = map.buffer.subarray(at, at + req.count);
        return encodeReply(h.id, h.command, encodeDmaAccess(req.address, req.count, data));
      }
      const handler = this.#options.onDmaRead;
      if (handler === undefined) return err(Errno.ENOTSUP, "unknown-command", "no onDmaRead");
      const r = await handler(req.address, req.count);
      if (typeof r === "number") return err(r === 0 ? Errno.EIO : r, "command-failed", "onDmaRead");
      if (r.byteLength !== req.count) return err(Errno.EIO, "command-failed", "onDmaRead-length");
      return encodeReply(h.id, h.command, encodeDmaAccess(req.address, req.count, r));
    }
    if (h.command === Command.DMA_WRITE) {
      const req = decodeDmaWriteRequest(payload);
      if (isDecodeError(req)) return err(req.errno, "bad-payload", req.reason);
      if (req.count > this.#maxDataXferBytes) return err(Errno.E2BIG, "bad-payload", "count-over-max");
      const map = this.#mapped(req.address, req.count, DmaMapFlag.WRITE);
      if (map === undefined) return err(Errno.EFAULT, "command-failed", "unmapped");
      if (map.buffer !== undefined) {
        map.buffer.set(req.data, req.address - map.iova);
        return encodeReply(h.id, h.command, encodeDmaAccess(req.address, req.count));
      }
      const handler = this.#options.onDmaWrite;
      if (handler === undefined) return err(Errno.ENOTSUP, "unknown-command", "no onDmaWrite");
      const errno = await handler(req.address, req.data);
      if (errno !== 0) return err(errno, "command-failed", "onDmaWrite");
      return encodeReply(h.id, h.command, encodeDmaAccess(req.address, req.count));
    }
    return err(Errno.ENOTSUP, "unknown-command");
  }

  /** The mapping holding [iova, iova + count) with `need` permission, or undefined. */
  #mapped(iova: number, count: number, need: number): MapEntry | undefined {
    if (count === 0) return this.#maps.find(iova, 1);
    const e = this.#maps.find(iova, count);
    return e !== undefined && (e.flags & need) !== 0 ? e : undefined;
  }

  #onClosed(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#requests.failAll(
      () => new VfioUserError("disconnected", "connection closed", { errno: Errno.ECONNRESET }),
    );
    for (const h of this.#closeHandlers) h();
  }

  #closeFds(fds: readonly number[]): void {
    for (const fd of fds) {
      try {
        this.#closeFd(fd);
      } catch {
        // keep closing the rest
      }
    }
  }

  #emit(e: VfioUserEvent): void {
    try {
      this.#options.log?.(e);
    } catch {
      // logging must never break the protocol
    }
  }
}
