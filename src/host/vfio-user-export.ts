/**
 * Exports one `NvmeFunction` over vfio-user: `NvmeFunctionBackend` is the glue between the protocol
 * server (`VfioUserServer`, which owns the wire) and the function (config space, BARs, controller,
 * DMA map, interrupts, migration portal). No protocol logic lives here.
 *
 *   VMM (QEMU vfio-user-pci, nvmig vm)      VfioUserServer            NvmeFunctionBackend → NvmeFunction
 *     | DMA_MAP + memfd ───────────────────────► ─────────────────────► mmap → fn.dma.map
 *     | REGION_INFO BAR0 ◄─── sparse area [0x1000, 0x2000) + doorbell memfd (= controller.doorbells)
 *     | SET_IRQS MSI-X eventfds ───────────────► ─────────────────────► vector v → eventfd v
 *     | REGION_WRITE CC (trapped page) ─────────► ─────────────────────► controller.write32; poll loop on
 *     | doorbell store through its mmap (no message)                    poll loop sees it → controller.poll()
 *     | ◄─────────────────────────────── eventfd signalled after the CQE is in guest RAM
 *     | DEVICE_FEATURE / MIG_DATA_READ/WRITE ──► ─────────────────────► MigrationPortal (vfio-user dialect)
 *
 * Regions: BAR0 16 KiB (R/W, MMAP with one sparse area = the doorbell page, backed by a memfd that
 * becomes the controller's doorbell page; the register page is trapped), BAR4 (MSI-X table + PBA,
 * R/W, not mmappable: the client emulates the table and forwards PBA reads, answered from the pending
 * bits of the eventfd routing), CONFIG 4 KiB (R/W); the other BARs, ROM and VGA have size 0.
 * IRQs: INTx 1, MSI 0, MSI-X = the function's vectors, ERR 1, REQ 1 (see vfio-user-irqs.ts).
 *
 * Doorbells written through the client's mmap produce no message, so while a client is attached a
 * poll loop watches the page: with the controller ready (CSTS.RDY — admin doorbells land in the page
 * too) it calls `controller.poll()` every event-loop turn (a ref'd setImmediate) while it found work
 * in the last `busyWindowMs`, else every `idleIntervalMs` (unref'd timer); with the controller not
 * ready it only looks for CSTS.RDY every `standbyIntervalMs` (a Set Controller State + Resume through
 * the PF makes it ready without any message to us). A REGION_WRITE to BAR0 polls right after its
 * reply is sent (a client may not serve DMA while it waits for that reply).
 *
 * Access "observe" (the PF, which the host's own driver owns): regions are read-only and not
 * mmappable; DMA_MAP, SET_IRQS (other than disabling), DEVICE_RESET answer EPERM; no migration.
 *
 * fd-less DMA maps (QEMU maps ROM and BAR windows without an fd): with a remote accessor set
 * (`setRemoteDma`; `exportNvmeFunction` sets the server's `dmaRead` / `dmaWrite`) they become remote
 * ranges of the function's `Dma`, and NVM Read / Write / Compare data there moves by DMA_READ /
 * DMA_WRITE messages, completing asynchronously (see `controller/nvm/remote-transfer.ts`). Everything
 * else the controller reads synchronously — queues (refused at creation), PRP lists, SGL segments,
 * admin and other command data — must lie in fd-backed memory, else Data Transfer Error. Guest RAM
 * should therefore be shareable (QEMU: memory-backend-memfd / -file with share=on).
 */
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { BAR0_BYTES, MSIX_BAR } from "../controller/nvme-function.ts";
import type { RemoteDmaAccessor } from "../memory/dma.ts";
import { close, eventfdWrite, ftruncate, memfdCreate } from "../native/addon.ts";
import { type MappedRange, mapFdRange } from "../native/guest-memory-fd.ts";
import { DOORBELL_BASE } from "../nvme/registers.ts";
import type { BlockChannel } from "../vfio/nvme/admin-channel.ts";
import type { MigrationProfile } from "../vfio/nvme/controller-ops.ts";
import { createNvmeVariantDriver } from "../vfio/nvme/variant-driver.ts";
import { MigrationPortal } from "../vfio/portal.ts";
import { Errno as VfioErrno } from "../vfio/states.ts";
import type {
  DeviceInfo,
  DmaMapping,
  Errno,
  FeatureOutcome,
  IrqInfo,
  RegionDescription,
  RegionWriteOutcome,
  SetIrqsRequest,
  VfioUserDeviceBackend,
} from "../vfio-user/device-backend.ts";
import type { VfioUserEvent } from "../vfio-user/events.ts";
import {
  DeviceFeatureFlag,
  DeviceInfoFlag,
  Errno as E,
  RegionFlag,
  RegionIndex,
  SET_IRQS_DATA_MASK,
  SetIrqsFlag,
} from "../vfio-user/protocol/constants.ts";
import { VfioUserServer, type VfioUserServerOptions } from "../vfio-user/server.ts";
import { listenVfioUser, type VfioUserListenOptions } from "../vfio-user/socket-transport.ts";
import type { HostNode } from "./host-node.ts";
import { type ClientDmaEvent, ClientDmaMap, type MessageOnlyRange } from "./vfio-user-dma.ts";
import { irqInfoFor, VfioUserIrqs } from "./vfio-user-irqs.ts";

/** PCI Express config space size (the CONFIG region). */
export const CONFIG_BYTES = 4096;
/** The sparse-mmap doorbell page inside BAR0. */
export const DOORBELL_PAGE = { offset: DOORBELL_BASE, sizeBytes: 0x1000 } as const;
/** Length of the doorbell memfd: the page sits at file offset 0x1000, so region offset 0 + area offset works. */
const DOORBELL_FILE_BYTES = DOORBELL_PAGE.offset + DOORBELL_PAGE.sizeBytes;
const NUM_REGIONS = 9;
const NUM_IRQS = 5;

export type NvmeExportEventName =
  | ClientDmaEvent["name"]
  | "irq-signal-failed"
  | "device-reset"
  | "client-state-dropped"
  | "poll-started"
  | "poll-stopped"
  | "portal-failed";

export interface NvmeExportEvent {
  name: NvmeExportEventName;
  level: "info" | "warn" | "error";
  iova?: number;
  sizeBytes?: number;
  errno?: number;
  detail?: string;
}

export interface NvmeFunctionBackendOptions {
  /**
   * "client" (default): a VMM drives the function (doorbell mmap, interrupts routed to its eventfds,
   * its memory mapped for DMA). "observe": read-only view of a function someone else drives (the PF).
   */
  access?: "client" | "observe";
  /** Migration portal of the function (VFs). Default none: migration features answer ENOTTY. */
  portal?: MigrationPortal;
  /** Poll period while no doorbell work was seen for `busyWindowMs`, ms. Default 1, range 1..1000. */
  idleIntervalMs?: number;
  /** How long after the last doorbell work the loop polls every event-loop turn, ms. Default 1, range 0..1000. */
  busyWindowMs?: number;
  /**
   * Period of the check for CSTS.RDY while a client is attached and the controller is not ready, ms
   * (the controller can become ready without a message: Set Controller State and Resume on the PF).
   * Default 10, range 1..1000.
   */
  standbyIntervalMs?: number;
  /** Receives the export's events. Default: discarded. */
  log?: (e: NvmeExportEvent) => void;
}

/**
 * State of the doorbell poll loop: off (no client), standby (client attached, controller not ready),
 * idle (ready, polled every `idleIntervalMs`), busy (polled every event-loop turn).
 */
export type PollMode = "off" | "standby" | "idle" | "busy";

function checkRange(name: string, v: number, lo: number, hi: number): number {
  if (!Number.isFinite(v) || v < lo || v > hi) throw new RangeError(`${name}: ${lo}..${hi}, got ${v}`);
  return v;
}

function closeQuietly(fd: number): void {
  try {
    close(fd);
  } catch {
    // already closed: nothing to release
  }
}

export class NvmeFunctionBackend implements VfioUserDeviceBackend {
  readonly fn: NvmeFunction;
  readonly access: "client" | "observe";
  readonly #portal: MigrationPortal | undefined;
  readonly #log: ((e: NvmeExportEvent) => void) | undefined;
  readonly #idleIntervalMs: number;
  readonly #busyWindowMs: number;
  readonly #msixVectors: number;
  readonly #pba: { offset: number; sizeBytes: number };
  readonly #msixBarBytes: number;
  readonly #irqs: VfioUserIrqs;
  readonly #dma: ClientDmaMap;
  #remote: RemoteDmaAccessor | undefined;
  /** Doorbell memfd and the server's own mapping of its page (client access only). */
  #doorbellFd: number | undefined;
  #doorbellMap: MappedRange | undefined;
  #attached = false;
  #disposed = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #pollImmediate: NodeJS.Immediate | undefined;
  #lastWorkMs = Number.NEGATIVE_INFINITY;
  #pollMode: PollMode = "off";
  readonly #standbyIntervalMs: number;

  constructor(fn: NvmeFunction, options: NvmeFunctionBackendOptions = {}) {
    this.fn = fn;
    this.access = options.access ?? "client";
    this.#portal = options.portal;
    this.#log = options.log;
    this.#idleIntervalMs = checkRange("idleIntervalMs", options.idleIntervalMs ?? 1, 1, 1000);
    this.#busyWindowMs = checkRange("busyWindowMs", options.busyWindowMs ?? 1, 0, 1000);
    this.#standbyIntervalMs = checkRange("standbyIntervalMs", options.standbyIntervalMs ?? 10, 1, 1000);
    this.#msixVectors = fn.pci.descriptor.msix.vectors;
    const pba = fn.pci.msixRegions().find((r) => r.kind === "pba")!;
    this.#pba = { offset: pba.offset, sizeBytes: pba.sizeBytes };
    this.#msixBarBytes = fn.pci.barSpecs.find((b) => b.index === MSIX_BAR)!.sizeBytes;
    this.#irqs = new VfioUserIrqs({
      msixVectors: this.#msixVectors,
      closeFd: closeQuietly,
      signal: (fd) => this.#signal(fd),
    });
    this.#dma = new ClientDmaMap(fn.dma, {
      closeFd: closeQuietly,
      inUse: (buffer) => this.#queueUses(buffer),
      onEvent: (e) => this.#emit({ ...e, level: e.name === "dma-map-refused" ? "warn" : "info" }),
      remote: {
        read: (iova, n) => this.#remote?.read(iova, n) ?? Promise.reject(new Error("no remote DMA accessor")),
        write: (iova, b) =>
          this.#remote?.write(iova, b) ?? Promise.reject(new Error("no remote DMA accessor")),
      },
    });
    if (this.access === "client") this.#takeOverDoorbellsAndInterrupts();
  }

  /**
   * Sets how fd-less ranges are reached (the server's DMA_READ / DMA_WRITE). Until set, device access
   * to them fails (Data Transfer Error).
   */
  setRemoteDma(accessor: RemoteDmaAccessor | undefined): void {
    this.#remote = accessor;
  }

  /** Ranges the client mapped without an fd (see the file head). */
  messageOnlyRanges(): MessageOnlyRange[] {
    return this.#dma.messageOnlyRanges();
  }

  /** The memfd backing the doorbell page (client access), e.g. for diagnostics. */
  get doorbellFd(): number | undefined {
    return this.#doorbellFd;
  }

  /** True while the doorbell poll loop is scheduled (any mode but "off"). */
  get polling(): boolean {
    return this.#pollTimer !== undefined || this.#pollImmediate !== undefined;
  }

  /** What the doorbell poll loop is doing now. */
  get pollMode(): PollMode {
    return this.#pollMode;
  }

  // ---------------------------------------------------------------- VfioUserDeviceBackend

  deviceInfo(): DeviceInfo {
    return { flags: DeviceInfoFlag.PCI | DeviceInfoFlag.RESET, numRegions: NUM_REGIONS, numIrqs: NUM_IRQS };
  }

  regionInfo(index: number): RegionDescription | undefined {
    const rw = this.access === "client" ? RegionFlag.READ | RegionFlag.WRITE : RegionFlag.READ;
    switch (index) {
      case RegionIndex.BAR0:
        if (this.#doorbellFd === undefined) return { flags: rw, sizeBytes: BAR0_BYTES };
        return {
          flags: rw | RegionFlag.MMAP,
          sizeBytes: BAR0_BYTES,
          mmapOffset: 0,
          sparseAreas: [DOORBELL_PAGE],
          mmapFd: this.#doorbellFd,
        };
      case MSIX_BAR:
        return { flags: rw, sizeBytes: this.#msixBarBytes };
      case RegionIndex.CONFIG:
        return { flags: rw, sizeBytes: CONFIG_BYTES };
      case RegionIndex.BAR1:
      case RegionIndex.BAR2:
      case RegionIndex.BAR3:
      case RegionIndex.BAR5:
      case RegionIndex.ROM:
      case RegionIndex.VGA:
        return { flags: 0, sizeBytes: 0 };
      default:
        return undefined;
    }
  }

  regionRead(index: number, offset: number, count: number): Uint8Array | Errno {
    this.#touch();
    switch (index) {
      case RegionIndex.CONFIG:
        return this.#configRead(offset, count);
      case RegionIndex.BAR0: {
        const out = new Uint8Array(count);
        const first = offset & ~3;
        for (let d = first; d < offset + count; d += 4) {
          const v = this.fn.barRead32(0, d);
          for (let b = 0; b < 4; b++) {
            const at = d + b - offset;
            if (at >= 0 && at < count) out[at] = (v >>> (8 * b)) & 0xff;
          }
        }
        this.#ensurePolling();
        return out;
      }
      case MSIX_BAR: {
        const out = this.fn.pci.msixReadBytes(MSIX_BAR, offset, count) ?? new Uint8Array(count);
        const pbaEnd = this.#pba.offset + this.#pba.sizeBytes;
        const from = Math.max(offset, this.#pba.offset);
        const to = Math.min(offset + count, pbaEnd);
        if (from < to) {
          const pending = this.#irqs.pbaBytes(from - this.#pba.offset, to - from);
          for (let i = 0; i < pending.length; i++) out[from - offset + i]! |= pending[i]!;
        }
        return out;
      }
      default:
        return E.EINVAL;
    }
  }

  regionWrite(index: number, offset: number, data: Uint8Array): Errno | RegionWriteOutcome {
    if (this.access !== "client") return E.EPERM;
    this.#touch();
    switch (index) {
      case RegionIndex.CONFIG:
        return this.#configWrite(offset, data);
      case RegionIndex.BAR0:
        this.#bar0Write(offset, data);
        return { errno: 0, afterReply: () => this.#pollNow() };
      case MSIX_BAR:
        this.fn.pci.msixWriteBytes(MSIX_BAR, offset, data);
        return 0;
      default:
        return E.EINVAL;
    }
  }

  irqInfo(index: number): IrqInfo | undefined {
    return irqInfoFor(index, this.#msixVectors);
  }

  setIrqs(request: SetIrqsRequest): Errno {
    const disableAll =
      request.count === 0 &&
      (request.flags & SET_IRQS_DATA_MASK) === SetIrqsFlag.DATA_NONE &&
      (request.flags & SetIrqsFlag.ACTION_TRIGGER) !== 0;
    if (this.access !== "client") return disableAll ? 0 : E.EPERM;
    this.#touch();
    return this.#irqs.set(request);
  }

  async reset(): Promise<Errno> {
    if (this.access !== "client") return E.EPERM;
    this.#touch();
    if (this.#portal !== undefined) {
      try {
        await this.#portal.reset();
      } catch (e) {
        this.#emit({ name: "portal-failed", level: "error", detail: `reset: ${String(e)}` });
      }
    }
    this.fn.reset();
    this.#irqs.resetState();
    this.#emit({ name: "device-reset", level: "info" });
    this.#ensurePolling();
    return 0;
  }

  dmaMap(mapping: DmaMapping): Errno {
    if (this.access !== "client") return E.EPERM;
    this.#touch();
    return this.#dma.map(mapping);
  }

  dmaUnmap(iova: number, sizeBytes: number): Errno {
    if (this.access !== "client") return E.EPERM;
    return this.#dma.unmap(iova, sizeBytes);
  }

  async feature(flags: number, data: Uint8Array): Promise<FeatureOutcome> {
    const portal = this.#portal;
    if (portal === undefined || this.access !== "client") return { errno: VfioErrno.ENOTTY };
    this.#touch();
    // A GET reply may be larger than the request (DMA_LOGGING_REPORT's bitmap): the portal is told
    // there is room for any reply; the server truncates it to the client's argsz and reports the need.
    const isGet = (flags & DeviceFeatureFlag.GET) !== 0;
    try {
      const r = await portal.deviceFeature(flags, data, isGet ? { argsz: 0xffff_ffff } : {});
      return r.ok ? { data: r.reply } : { errno: r.errno };
    } catch (e) {
      this.#emit({ name: "portal-failed", level: "error", detail: `feature ${flags}: ${String(e)}` });
      return { errno: E.EIO };
    } finally {
      this.#ensurePolling(); // a state change (e.g. STOP → RUNNING) may have made the controller ready
    }
  }

  /**
   * MIG_DATA_READ: up to `sizeBytes` of the saving stream. Fewer bytes than asked means "no more for
   * now" (PRE_COPY) or the end (STOP_COPY; 0 bytes once the stream ended for good).
   */
  async migDataRead(sizeBytes: number): Promise<Uint8Array | Errno> {
    const portal = this.#portal;
    if (portal === undefined || this.access !== "client") return E.EINVAL;
    this.#touch();
    const parts: Uint8Array[] = [];
    let total = 0;
    try {
      while (total < sizeBytes) {
        const r = await portal.readData(sizeBytes - total);
        if (!r.ok) {
          // ENOMSG (PRE_COPY: nothing more now) ends this reply, possibly empty; any other error
          // fails it unless bytes were already taken (they would be lost): it recurs on the next read.
          if (total > 0 || r.errno === VfioErrno.ENOMSG) break;
          return r.errno;
        }
        if (r.bytes.byteLength === 0) break; // permanent end of stream
        parts.push(r.bytes);
        total += r.bytes.byteLength;
      }
    } catch (e) {
      this.#emit({ name: "portal-failed", level: "error", detail: `read: ${String(e)}` });
      if (total === 0) return E.EIO;
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }

  async migDataWrite(bytes: Uint8Array): Promise<Errno> {
    const portal = this.#portal;
    if (portal === undefined || this.access !== "client") return E.EINVAL;
    this.#touch();
    try {
      const r = await portal.writeData(bytes);
      return r.ok ? 0 : r.errno;
    } catch (e) {
      this.#emit({ name: "portal-failed", level: "error", detail: `write: ${String(e)}` });
      return E.EIO;
    }
  }

  clientDetached(): void {
    this.#attached = false;
    this.#stopPolling();
    this.#dma.unmapAll();
    this.#irqs.closeAll();
    this.#emit({ name: "client-state-dropped", level: "info" });
  }

  /**
   * Gives the function back: stops polling, drops maps and eventfds, restores in-heap doorbells and
   * table-based interrupt delivery, closes the doorbell memfd. Idempotent. Device state is kept.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.clientDetached();
    this.#disposed = true;
    if (this.#doorbellMap !== undefined) {
      const c = this.fn.controller;
      c.doorbells = new Uint32Array(c.doorbells); // copy out of the shared page
      this.#doorbellMap.unmap();
      this.#doorbellMap = undefined;
      this.fn.setDirectInterrupts(undefined);
    }
    if (this.#doorbellFd !== undefined) closeQuietly(this.#doorbellFd);
    this.#doorbellFd = undefined;
  }

  // ---------------------------------------------------------------- internals

  #takeOverDoorbellsAndInterrupts(): void {
    const fd = memfdCreate(`nvmig-doorbells-cntlid${this.fn.controller.cntlid}`);
    try {
      ftruncate(fd, DOORBELL_FILE_BYTES);
      const map = mapFdRange(fd, DOORBELL_PAGE.offset, DOORBELL_PAGE.sizeBytes, true);
      const page = new Uint32Array(map.buffer, map.bytes.byteOffset, DOORBELL_PAGE.sizeBytes / 4);
      const c = this.fn.controller;
      page.set(c.doorbells.subarray(0, page.length));
      c.doorbells = page;
      this.#doorbellMap = map;
    } catch (e) {
      closeQuietly(fd);
      throw e;
    }
    this.#doorbellFd = fd;
    this.fn.setDirectInterrupts((v) => this.#irqs.raise(v));
  }

  #signal(fd: number): boolean {
    try {
      eventfdWrite(fd, 1n);
      return true;
    } catch (e) {
      this.#emit({ name: "irq-signal-failed", level: "warn", detail: String(e) });
      return false;
    }
  }

  #configRead(offset: number, count: number): Uint8Array | Errno {
    if (count === 1 || count === 2 || count === 4) {
      const v = this.fn.configRead(offset, count);
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = (v >>> (8 * i)) & 0xff;
      return out;
    }
    return this.fn.pci.configReadBytes(offset, count) ?? E.EINVAL;
  }

  #configWrite(offset: number, data: Uint8Array): Errno {
    const n = data.byteLength;
    if (n === 1 || n === 2 || n === 4) {
      let v = 0;
      for (let i = n - 1; i >= 0; i--) v = v * 256 + data[i]!;
      this.fn.configWrite(offset, n, v);
      return 0;
    }
    return this.fn.pci.configWriteBytes(offset, data) ? 0 : E.EINVAL;
  }

  #bar0Write(offset: number, data: Uint8Array): void {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (data.byteLength === 8 && (offset & 7) === 0) {
      this.fn.barWrite64(0, offset, v.getBigUint64(0, true));
      return;
    }
    let at = 0;
    while (at < data.byteLength) {
      const pos = offset + at;
      if ((pos & 3) === 0 && data.byteLength - at >= 4) {
        this.fn.barWrite32(0, pos, v.getUint32(at, true));
        at += 4;
        continue;
      }
      // Partial dword: read-modify-write of the dword holding it.
      const base = pos & ~3;
      let word = this.fn.barRead32(0, base);
      while (at < data.byteLength && (offset + at) >>> 2 === base >>> 2) {
        const shift = 8 * (offset + at - base);
        word = ((word & ~(0xff << shift)) | (data[at]! << shift)) >>> 0;
        at++;
      }
      this.fn.barWrite32(0, base, word);
    }
  }

  /** True if a live queue of the controller lies in `buffer` (then it must stay mapped). */
  #queueUses(buffer: ArrayBuffer): boolean {
    const c = this.fn.controller;
    for (const q of c.sqs) if (q !== undefined && q.region.bytes.buffer === buffer) return true;
    for (const q of c.cqs) if (q !== undefined && q.region.bytes.buffer === buffer) return true;
    return false;
  }

  // ---------------------------------------------------------------- doorbell polling

  /** A client command arrived: the client is attached and may write doorbells. */
  #touch(): void {
    if (this.#attached || this.#disposed) return;
    this.#attached = true;
    this.#ensurePolling();
  }

  /** The loop runs while a client is attached to a doorbell page; `#tick` looks at CSTS.RDY. */
  #wantPoll(): boolean {
    return this.#attached && !this.#disposed && this.#doorbellMap !== undefined;
  }

  /**
   * Starts the loop, or wakes it from standby when the controller became ready meanwhile (a Set
   * Controller State / Resume through the PF, a migration arc, a register write).
   */
  #ensurePolling(): void {
    if (!this.#wantPoll() || this.#pollImmediate !== undefined) return;
    if (this.#pollTimer !== undefined) {
      if (this.#pollMode !== "standby" || !this.fn.controller.ready) return;
      clearTimeout(this.#pollTimer);
      this.#pollTimer = undefined;
    } else {
      this.#emit({ name: "poll-started", level: "info" });
    }
    const now = performance.now();
    this.#lastWorkMs = now;
    this.#schedule(now);
  }

  #pollNow(): void {
    if (!this.#wantPoll()) return;
    const now = performance.now();
    if (this.fn.controller.ready) this.fn.controller.poll();
    // A register or doorbell write is activity: poll every turn for the busy window.
    this.#lastWorkMs = now;
    if (this.#pollTimer !== undefined) {
      clearTimeout(this.#pollTimer);
      this.#pollTimer = undefined;
    }
    if (this.#pollImmediate === undefined) this.#schedule(now);
  }

  readonly #tick = (): void => {
    this.#pollTimer = undefined;
    this.#pollImmediate = undefined;
    if (!this.#wantPoll()) {
      this.#pollMode = "off";
      this.#emit({ name: "poll-stopped", level: "info" });
      return;
    }
    const c = this.fn.controller;
    if (!c.ready) {
      // Standby: nothing to fetch; look again for CSTS.RDY (which may be set without any message).
      this.#pollMode = "standby";
      this.#pollTimer = setTimeout(this.#tick, this.#standbyIntervalMs);
      this.#pollTimer.unref();
      return;
    }
    const now = performance.now();
    if (c.poll()) this.#lastWorkMs = now;
    this.#schedule(now);
  };

  #schedule(now: number): void {
    if (now - this.#lastWorkMs < this.#busyWindowMs) {
      // Not unref'd: an unref'd immediate does not keep libuv's poll phase from blocking, so it
      // would only run when something else woke the loop (measured: doorbells seen once a second).
      this.#pollMode = "busy";
      this.#pollImmediate = setImmediate(this.#tick);
    } else {
      this.#pollMode = "idle";
      this.#pollTimer = setTimeout(this.#tick, this.#idleIntervalMs);
      this.#pollTimer.unref();
    }
  }

  #stopPolling(): void {
    if (this.#pollTimer !== undefined) clearTimeout(this.#pollTimer);
    if (this.#pollImmediate !== undefined) clearImmediate(this.#pollImmediate);
    this.#pollTimer = undefined;
    this.#pollImmediate = undefined;
    this.#pollMode = "off";
  }

  #emit(e: NvmeExportEvent): void {
    try {
      this.#log?.(e);
    } catch {
      // logging must never break the device
    }
  }
}

// ---------------------------------------------------------------- portal for a VF

export interface VfPortalOptions {
  /** "local" (default): namespace data moves with the function; "shared": both hosts see the same storage. */
  storage?: "local" | "shared";
  /** PF command set of the variant driver. Default "tp4159". */
  profile?: MigrationProfile;
  /** Label in events and the stream identity. Default `<host name>/vf<vfn>`. */
  label?: string;
}

/**
 * The VFIO migration v2 portal of VF `vfn` of `host`, backed by the NVMe variant driver (which reaches
 * the VF through the host's PF driver). The DMA ranges for "log everything" are the VF's current DMA map
 * (direct and remote ranges).
 */
export async function createVfPortal(
  host: HostNode,
  vfn: number,
  options: VfPortalOptions = {},
): Promise<MigrationPortal> {
  const fn = host.vf(vfn);
  const label = options.label ?? `${host.name}/vf${vfn}`;
  const blocks: BlockChannel = host.pfDriver;
  const variant = await createNvmeVariantDriver({
    channel: host.pfDriver,
    vfn,
    profile: options.profile ?? "tp4159",
    storage: options.storage ?? "local",
    blocks,
    namespaces: [...host.subsystem.subsystem.namespaces.values()].map((ns) => ({
      nsid: ns.nsid,
      lbaCount: ns.lbaCount,
    })),
    identity: label,
    // Remote (fd-less) ranges too: device writes there are dirty-logged like any other.
    dmaRanges: () =>
      [
        ...fn.dma.ranges().map((r) => ({ iova: r.iova, length: r.bytes.byteLength })),
        ...fn.dma.remoteRanges().map((r) => ({ iova: r.iova, length: r.lengthBytes })),
      ]
        .sort((a, b) => a.iova - b.iova)
        .map((r) => ({ iova: BigInt(r.iova), length: BigInt(r.length) })),
  });
  return new MigrationPortal({ migration: variant.migration, dmaLogging: variant.dmaLogging, label });
}

// ---------------------------------------------------------------- socket + server + backend

/** One log entry of an export: the function label and a server or backend event. */
export interface ExportLogEntry {
  fn: string;
  source: "vfio-user" | "export";
  event: VfioUserEvent | NvmeExportEvent;
}

export interface ExportFunctionOptions extends NvmeFunctionBackendOptions {
  /** Socket file path. */
  path: string;
  /** Name in logs ("pf", "vf1"). */
  label: string;
  /** Server options (limits); `backend` and `log` are set here. Default: the server's defaults. */
  server?: Omit<VfioUserServerOptions, "backend" | "log">;
  /** Socket options (mode, replacing a stale file). Default: the listener's defaults. */
  listen?: VfioUserListenOptions;
  /** Receives server and backend events. Default: discarded. */
  onLog?: (entry: ExportLogEntry) => void;
}

export interface FunctionExport {
  readonly label: string;
  readonly path: string;
  readonly backend: NvmeFunctionBackend;
  readonly server: VfioUserServer;
  /** Stops listening (removes the socket file), disconnects the client, gives the function back. Idempotent. */
  close(): void;
}

/** Creates the backend and server for `fn` and listens at `options.path`. */
export function exportNvmeFunction(fn: NvmeFunction, options: ExportFunctionOptions): FunctionExport {
  const onLog = options.onLog;
  const backend = new NvmeFunctionBackend(fn, {
    ...options,
    log: (event) => onLog?.({ fn: options.label, source: "export", event }),
  });
  const server = new VfioUserServer({
    ...options.server,
    backend,
    log: (event) => onLog?.({ fn: options.label, source: "vfio-user", event }),
  });
  backend.setRemoteDma({
    read: (iova, n) => server.dmaRead(iova, n),
    write: (iova, b) => server.dmaWrite(iova, b),
  });
  let listener: ReturnType<typeof listenVfioUser>;
  try {
    listener = listenVfioUser(options.path, (t) => server.attach(t), options.listen);
  } catch (e) {
    server.close();
    backend.dispose();
    throw e;
  }
  let closed = false;
  return {
    label: options.label,
    path: options.path,
    backend,
    server,
    close(): void {
      if (closed) return;
      closed = true;
      listener.close();
      server.close();
      backend.dispose();
    },
  };
}
