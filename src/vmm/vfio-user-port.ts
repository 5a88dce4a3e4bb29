/**
 * `FunctionPort` over a vfio-user connection (a `VfioUserClient`): the VMM side of one PCI function
 * exported by another process, the way QEMU's `vfio-user-pci` device drives it.
 *
 *   VMM (this port)                                      server (the function)
 *     | DEVICE_GET_INFO, REGION_INFO 7 (config), 0 (BAR0) ──►
 *     | ◄── BAR0 sparse-mmap area [0x1000, 0x2000) + fd       → mmap: the doorbell page
 *     | DMA_MAP iova 0, guest RAM size, RW, fd = memfd ──────►  (the device mmaps guest RAM)
 *     | REGION_READ 7 … (capability list → MSI-X: table, PBA) ──►
 *     | guest config/register accesses: REGION_READ/REGION_WRITE (writes posted, NO_REPLY)
 *     | guest doorbells (BAR0 ≥ 0x1000): plain stores into the mmap'd page — no message
 *     | MSI-X Enable + table entry unmasked → SET_IRQS MSIX start=v [eventfd] ──►
 *     | ◄── eventfd signal → the guest's interrupt handler (vector v)
 *
 * Ordering: register and config writes are posted in order on the socket and the server handles
 * commands in order, so a later read observes them; `flush()` makes one round trip (and waits for
 * SET_IRQS replies). A doorbell store reaches the device at once and may overtake posted writes still
 * on the socket — as with QEMU, which also maps the doorbell page; the guest driver only rings after
 * reading CSTS.RDY, so nothing depends on that order.
 *
 * MSI-X is emulated here, as QEMU does (`msix-emulation.ts`): the table and PBA in the device's BAR are
 * never written; Message Control writes go to the device *and* drive SET_IRQS.
 *
 * Peer failures are values: a read that fails (error reply, timeout, server gone) returns all ones,
 * as a PCI read of a vanished device does, and is logged (`read-failed`); a posted write that cannot be
 * sent is dropped and logged. Nothing a server does throws out of a guest access.
 *
 * Migration: `pause()` stops the guest's accesses (writes held in order, reads wait, interrupts held)
 * like `InProcessPort.pause`; `retarget(client)` moves the port — guest RAM mapping, doorbell page,
 * MSI-X eventfds — to another server's function (the migration destination); `resume()` replays what
 * was held, to the new function, then reads CSTS once there (`switchover-check` event).
 *
 * Compatibility: needs a PCI device (DEVICE_GET_INFO flag PCI) with a config region; BAR0 mmap and
 * MSI-X are used when offered, else doorbells go by message and the driver polls.
 */
import { closeSync as closeFdSync } from "node:fs";
import { type MappedRange, mapFdRange } from "../native/guest-memory-fd.ts";
import { CSTS, DOORBELL_BASE, Reg } from "../nvme/registers.ts";
import type { VfioUserClient } from "../vfio-user/client.ts";
import { VfioUserError } from "../vfio-user/errors.ts";
import { DeviceInfoFlag, IrqIndex, RegionFlag, RegionIndex } from "../vfio-user/protocol/constants.ts";
import type { FunctionPort } from "./function-port.ts";
import {
  decodeMsixCapability,
  MSIX_CAP_MESSAGE_CONTROL,
  MSIX_CAP_PBA,
  MSIX_CAP_TABLE,
  MsixEmulation,
  type MsixEmulationState,
} from "./msix-emulation.ts";

/** Guest RAM as the port shares it: an fd mapped at IOVA 0 (a `GuestMemoryFd` fits). */
export interface GuestRamFd {
  readonly fd: number;
  readonly sizeBytes: number;
}

export interface VfioUserPortOptions {
  /** Map the BAR0 doorbell page when the server offers it (sparse mmap area). Default true. */
  mmapDoorbells?: boolean;
  /** Receives the port's named events. Default: discarded. */
  log?: (event: VfioUserPortEvent) => void;
}

export type VfioUserPortEventName =
  | "attached"
  | "doorbell-page-mapped"
  | "doorbell-page-by-message"
  | "read-failed"
  | "write-failed"
  | "set-irqs-failed"
  | "server-disconnected"
  | "retargeted"
  | "switchover-check"
  | "detach-step-failed"
  | "detached";

export interface VfioUserPortEvent {
  name: VfioUserPortEventName;
  level: "info" | "warn" | "error";
  detail?: string;
  errno?: number;
}

export type VfioUserPortErrorCode =
  /** The device is not a PCI device, or lacks the config region. */
  | "not-pci"
  /** A command of the attach sequence failed (`cause` has the `VfioUserError`). */
  | "attach-failed"
  /** `retarget` found a function whose MSI-X layout differs from the current one. */
  | "incompatible-device"
  /** The port was detached. */
  | "detached";

/** The one error type of the port: attach/retarget failures (guest accesses never throw). */
export class VfioUserPortError extends Error {
  override readonly name = "VfioUserPortError";
  constructor(
    readonly code: VfioUserPortErrorCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

/** Counters of one port (since it was created). */
export interface VfioUserPortStats {
  /** Doorbell stores into the mapped page. */
  mmioDoorbells: number;
  /** Posted REGION_WRITEs (config and register writes, and doorbells without the mapped page). */
  postedWrites: number;
  /** REGION_READs. */
  regionReads: number;
  /** Reads that failed and returned all ones. */
  failedReads: number;
  /** Eventfd signals seen, and MSI-X messages delivered to the guest. */
  interruptSignals: number;
  interruptsDelivered: number;
  /** Vectors currently registered with the device (eventfds). */
  vectorsRegistered: number;
}

const PCI_STATUS = 0x06;
const PCI_STATUS_CAP_LIST = 1 << 4;
const PCI_CAPABILITY_LIST = 0x34;
const PCI_CAP_ID_MSIX = 0x11;
const DOORBELL_PAGE_BYTES = 0x1000;

const noop = (): void => {};

/** What the port knows of the function behind one connection. */
interface Binding {
  client: VfioUserClient;
  /** The doorbell page as mapped, and its BAR0 range [start, end). */
  doorbellMap?: MappedRange;
  doorbells?: Uint32Array;
  doorbellStart: number;
  doorbellEnd: number;
}

export class VfioUserPort implements FunctionPort {
  private binding: Binding;
  private readonly ram: GuestRamFd;
  private readonly options: VfioUserPortOptions;
  /** MSI-X emulation (undefined when the function has no MSI-X capability or no eventfd IRQs). */
  private msix: MsixEmulation | undefined;
  private handler: (vector: number) => void = noop;
  private paused = false;
  private held: Array<() => void> = [];
  private readonly inflight = new Set<Promise<void>>();
  private postedSinceSync = false;
  private detached = false;
  /** Set by `retarget`; the next `resume()` checks the new function once. */
  private checkAfterResume = false;
  private readonly counters = { mmioDoorbells: 0, postedWrites: 0, regionReads: 0, failedReads: 0 };

  private constructor(binding: Binding, ram: GuestRamFd, options: VfioUserPortOptions) {
    this.binding = binding;
    this.ram = ram;
    this.options = options;
  }

  /**
   * Attaches to the function behind `client` (VERSION already negotiated by `VfioUserClient.connect`):
   * DEVICE_GET_INFO, region infos (config, BAR0 with its doorbell page mmap'd), DMA_MAP of `ram` at
   * IOVA 0 (read/write, with its fd), MSI-X capability. The client stays the caller's to close.
   * @throws VfioUserPortError `not-pci` or `attach-failed`.
   */
  static async attach(
    client: VfioUserClient,
    ram: GuestRamFd,
    options: VfioUserPortOptions = {},
  ): Promise<VfioUserPort> {
    const port = new VfioUserPort({ client, doorbellStart: 0, doorbellEnd: 0 }, ram, options);
    port.binding = await port.bind(client);
    port.emit({ name: "attached", level: "info", detail: `${ram.sizeBytes} bytes of guest RAM at IOVA 0` });
    return port;
  }

  /** The connection the port uses now. */
  get client(): VfioUserClient {
    return this.binding.client;
  }

  /** True when doorbells are stores into the mapped page (no message). */
  get doorbellsMapped(): boolean {
    return this.binding.doorbells !== undefined;
  }

  /** True between `pause()` and `resume()`. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** MSI-X messages delivered to the guest. */
  get interruptsReceived(): number {
    return this.msix?.delivered ?? 0;
  }

  stats(): VfioUserPortStats {
    let registered = 0;
    const m = this.msix;
    if (m !== undefined) registered = m.registeredCount;
    return {
      ...this.counters,
      interruptSignals: m?.signals ?? 0,
      interruptsDelivered: m?.delivered ?? 0,
      vectorsRegistered: registered,
    };
  }

  // ---------------------------------------------------------------- binding a connection

  private async bind(client: VfioUserClient): Promise<Binding> {
    const step = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      try {
        return await f();
      } catch (e) {
        if (e instanceof VfioUserPortError) throw e;
        throw new VfioUserPortError("attach-failed", `${what}: ${(e as Error).message}`, { cause: e });
      }
    };
    const info = await step("DEVICE_GET_INFO", () => client.deviceGetInfo());
    if ((info.flags & DeviceInfoFlag.PCI) === 0 || info.numRegions <= RegionIndex.CONFIG) {
      throw new VfioUserPortError(
        "not-pci",
        `device flags 0x${info.flags.toString(16)}, ${info.numRegions} regions`,
      );
    }
    const config = await step("REGION_INFO config", () => client.regionInfo(RegionIndex.CONFIG));
    if (config.fd !== undefined) this.closeQuietly(config.fd);
    const rw = RegionFlag.READ | RegionFlag.WRITE;
    if ((config.flags & rw) !== rw || config.sizeBytes < 0x40) {
      throw new VfioUserPortError(
        "not-pci",
        `config region flags 0x${config.flags.toString(16)}, ${config.sizeBytes} bytes`,
      );
    }
    const binding: Binding = { client, doorbellStart: 0, doorbellEnd: 0 };
    const bar0 = await step("REGION_INFO BAR0", () => client.regionInfo(RegionIndex.BAR0));
    if (bar0.fd !== undefined) {
      try {
        if (this.options.mmapDoorbells !== false) this.mapDoorbells(binding, bar0.fd, bar0);
      } finally {
        this.closeQuietly(bar0.fd);
      }
    }
    if (binding.doorbells === undefined) {
      this.emit({
        name: "doorbell-page-by-message",
        level: "info",
        detail: "BAR0 offers no mappable doorbell page",
      });
    }
    try {
      await step("DMA_MAP guest RAM", () =>
        client.dmaMap({ iova: 0, sizeBytes: this.ram.sizeBytes, fd: this.ram.fd, fileOffset: 0 }),
      );
      await this.bindMsix(client, step);
    } catch (e) {
      binding.doorbellMap?.unmap();
      throw e;
    }
    client.onClose(() => {
      if (this.binding.client === client && !this.detached) {
        this.emit({ name: "server-disconnected", level: "error" });
      }
    });
    return binding;
  }

  private mapDoorbells(
    binding: Binding,
    fd: number,
    bar0: {
      flags: number;
      sizeBytes: number;
      offset: number;
      sparseAreas?: { offset: number; sizeBytes: number }[];
    },
  ): void {
    if ((bar0.flags & RegionFlag.MMAP) === 0) return;
    const areas = bar0.sparseAreas ?? [{ offset: 0, sizeBytes: bar0.sizeBytes }];
    const area = areas.find(
      (a) => a.offset <= DOORBELL_BASE && a.offset + a.sizeBytes >= DOORBELL_BASE + DOORBELL_PAGE_BYTES,
    );
    if (area === undefined) return;
    // Only the doorbell page is written directly; registers below it are always trapped.
    const map = mapFdRange(fd, bar0.offset + DOORBELL_BASE, DOORBELL_PAGE_BYTES, true);
    binding.doorbellMap = map;
    binding.doorbells = new Uint32Array(map.bytes.buffer, map.bytes.byteOffset, DOORBELL_PAGE_BYTES / 4);
    binding.doorbellStart = DOORBELL_BASE;
    binding.doorbellEnd = DOORBELL_BASE + DOORBELL_PAGE_BYTES;
    this.emit({
      name: "doorbell-page-mapped",
      level: "info",
      detail: `BAR0 [0x1000, 0x2000) at fd offset 0x${(bar0.offset + DOORBELL_BASE).toString(16)}`,
    });
  }

  /** Finds the MSI-X capability (first bind), or checks it is the same (retarget); re-registers vectors. */
  private async bindMsix(
    client: VfioUserClient,
    step: <T>(what: string, f: () => Promise<T>) => Promise<T>,
  ): Promise<void> {
    const cfg = async (offset: number, size: number): Promise<number> => {
      const b = await step(`config read 0x${offset.toString(16)}`, () =>
        client.regionRead(RegionIndex.CONFIG, offset, size),
      );
      let v = 0;
      for (let i = b.byteLength - 1; i >= 0; i--) v = v * 256 + b[i]!;
      return v;
    };
    let capOffset: number | undefined;
    if (((await cfg(PCI_STATUS, 2)) & PCI_STATUS_CAP_LIST) !== 0) {
      let at = (await cfg(PCI_CAPABILITY_LIST, 1)) & 0xfc;
      for (let hops = 0; at !== 0 && hops < 48; hops++) {
        const header = await cfg(at, 2);
        if ((header & 0xff) === PCI_CAP_ID_MSIX) {
          capOffset = at;
          break;
        }
        at = (header >>> 8) & 0xfc;
      }
    }
    const irq =
      capOffset === undefined ? undefined : await step("IRQ_INFO MSI-X", () => client.irqInfo(IrqIndex.MSIX));
    if (capOffset === undefined || irq === undefined || irq.count === 0) {
      if (this.msix !== undefined)
        throw new VfioUserPortError("incompatible-device", "the new function has no MSI-X");
      return;
    }
    const layout = decodeMsixCapability(
      capOffset,
      await cfg(capOffset + MSIX_CAP_MESSAGE_CONTROL, 2),
      await cfg(capOffset + MSIX_CAP_TABLE, 4),
      await cfg(capOffset + MSIX_CAP_PBA, 4),
    );
    const m = this.msix;
    if (m === undefined) {
      this.msix = new MsixEmulation(layout, {
        deviceVectors: irq.count,
        register: (start, fds) => this.registerVectors(start, fds),
        unregisterAll: () => this.unregisterVectors(),
        deliver: (vector) => this.handler(vector),
      });
      return;
    }
    const l = m.layout;
    if (
      l.capOffset !== layout.capOffset ||
      l.tableSize !== layout.tableSize ||
      l.tableBar !== layout.tableBar ||
      l.tableOffset !== layout.tableOffset
    ) {
      throw new VfioUserPortError("incompatible-device", "the new function's MSI-X capability differs");
    }
  }

  private registerVectors(start: number, fds: number[]): void {
    const client = this.binding.client;
    this.track(
      client.setIrqs(IrqIndex.MSIX, start, fds).catch((e: unknown) => {
        this.emit({
          name: "set-irqs-failed",
          level: "error",
          detail: `vectors ${start}+${fds.length}: ${(e as Error).message}`,
          errno: errnoOf(e),
        });
      }),
    );
  }

  private unregisterVectors(): void {
    const client = this.binding.client;
    this.track(
      client.disableIrqs(IrqIndex.MSIX).catch((e: unknown) => {
        this.emit({
          name: "set-irqs-failed",
          level: "error",
          detail: `disable: ${(e as Error).message}`,
          errno: errnoOf(e),
        });
      }),
    );
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  // ---------------------------------------------------------------- migration between VMMs

  /** The guest-visible MSI-X state (null without MSI-X), saved with a migrated guest. */
  saveInterruptState(): MsixEmulationState | null {
    return this.msix?.saveState() ?? null;
  }

  /**
   * Takes over the MSI-X state a source VMM saved and registers the enabled vectors' eventfds with
   * this port's function (waits for the SET_IRQS replies).
   * @throws VfioUserPortError `incompatible-device` when the function's MSI-X differs.
   */
  async loadInterruptState(s: MsixEmulationState | null): Promise<void> {
    if (s === null) return;
    const m = this.msix;
    if (m === undefined) throw new VfioUserPortError("incompatible-device", "the function has no MSI-X");
    try {
      m.loadState(s);
    } catch (e) {
      throw new VfioUserPortError("incompatible-device", (e as Error).message, { cause: e });
    }
    await Promise.all([...this.inflight]);
  }

  /**
   * The guest moved to another VMM: drop the accesses held while paused (the destination re-rings
   * every doorbell) so that nothing of this guest reaches this port's function again.
   */
  dropHeld(): void {
    this.held = [];
  }

  // ---------------------------------------------------------------- pause / retarget / detach

  /** Stops the guest's accesses and interrupt delivery (vCPUs stopped). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.msix?.hold();
  }

  /** Replays held accesses in order to the current function, then delivers held interrupts. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const held = this.held;
    this.held = [];
    for (const op of held) op();
    this.msix?.release();
    if (this.checkAfterResume) {
      this.checkAfterResume = false;
      void this.switchoverCheck();
    }
  }

  /**
   * After a move to another function: one CSTS read, behind the replayed accesses. It reports a
   * destination that is gone or failed (all ones, CSTS.CFS) as soon as the vCPUs run, and is the
   * client's first register access there — a server that polls the doorbell page only while it
   * sees its client active (as the host exporter does) learns from it that the client is live.
   */
  private async switchoverCheck(): Promise<void> {
    const csts = await this.readNumber(0, Reg.CSTS, 4);
    const bad = csts === 0xffffffff || (csts & CSTS.CFS) !== 0 || (csts & CSTS.RDY) === 0;
    this.emit({
      name: "switchover-check",
      level: bad ? "error" : "info",
      detail: `CSTS 0x${csts.toString(16)} on the new function`,
    });
  }

  /**
   * Moves the port to the function behind `client` (e.g. the migration destination): first the old
   * connection gets its MSI-X eventfds and guest RAM mapping taken back (best effort, unless
   * `releaseOld` is false), then the new one gets DMA_MAP, a mapped doorbell page and the registered
   * vectors' eventfds, and the old doorbell page is unmapped. Guest accesses are held meanwhile (the
   * port stays paused if it was). The old client stays the caller's to close.
   * @throws VfioUserPortError when the new function cannot be attached; the port then stays paused
   * and bound to the old connection (released unless `releaseOld` was false), so the caller can
   * retarget again (or back) before `resume()`.
   */
  async retarget(client: VfioUserClient, options: { releaseOld?: boolean } = {}): Promise<void> {
    if (this.detached) throw new VfioUserPortError("detached", "retarget after detach");
    const wasPaused = this.paused;
    this.pause();
    const old = this.binding;
    await Promise.all([...this.inflight]);
    if (options.releaseOld !== false && old.client.isOpen) {
      await this.release(old.client, (this.msix?.registeredCount ?? 0) > 0);
    }
    this.binding = await this.bind(client);
    old.doorbellMap?.unmap();
    this.msix?.reregister();
    await Promise.all([...this.inflight]);
    this.checkAfterResume = true;
    this.emit({ name: "retargeted", level: "info" });
    if (!wasPaused) this.resume();
  }

  /** Takes back eventfds and the guest RAM mapping from a device (best effort, logged). */
  private async release(client: VfioUserClient, irqs: boolean): Promise<void> {
    const steps: Promise<void>[] = [];
    const fail = (what: string) => (e: unknown) => {
      this.emit({
        name: "detach-step-failed",
        level: "warn",
        detail: `${what}: ${(e as Error).message}`,
        errno: errnoOf(e),
      });
    };
    if (irqs) steps.push(client.disableIrqs(IrqIndex.MSIX).catch(fail("SET_IRQS disable")));
    steps.push(client.dmaUnmap(0, this.ram.sizeBytes).catch(fail("DMA_UNMAP guest RAM")));
    await Promise.all(steps);
  }

  /**
   * Detaches from the function: takes back the MSI-X eventfds and the guest RAM mapping (best
   * effort), unmaps the doorbell page, closes the eventfds. Later reads return all ones and writes
   * are dropped. The client stays the caller's to close. Idempotent.
   */
  async detach(): Promise<void> {
    if (this.detached) return;
    this.detached = true;
    const b = this.binding;
    await Promise.all([...this.inflight]);
    if (b.client.isOpen) await this.release(b.client, (this.msix?.registeredCount ?? 0) > 0);
    b.doorbellMap?.unmap();
    b.doorbells = undefined;
    b.doorbellMap = undefined;
    this.msix?.close();
    this.held = [];
    this.emit({ name: "detached", level: "info" });
  }

  // ---------------------------------------------------------------- FunctionPort

  configRead(offset: number, sizeBytes: 1 | 2 | 4): Promise<number> {
    return this.access(() => this.readNumber(RegionIndex.CONFIG, offset, sizeBytes));
  }

  configWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void {
    if (this.paused) this.held.push(() => this.doConfigWrite(offset, sizeBytes, value));
    else this.doConfigWrite(offset, sizeBytes, value);
  }

  read32(bar: number, offset: number): Promise<number> {
    return this.access(() => {
      const m = this.msix;
      if (m?.inTable(bar, offset, 4)) return m.tableRead32(offset);
      if (m?.inPba(bar, offset, 4)) return m.pbaRead32(offset);
      return this.readNumber(bar, offset, 4);
    });
  }

  read64(bar: number, offset: number): Promise<bigint> {
    return this.access(async () => {
      const m = this.msix;
      if (m !== undefined && (m.inTable(bar, offset, 8) || m.inPba(bar, offset, 8))) {
        const lo = m.inTable(bar, offset, 8) ? m.tableRead32(offset) : m.pbaRead32(offset);
        const hi = m.inTable(bar, offset, 8) ? m.tableRead32(offset + 4) : m.pbaRead32(offset + 4);
        return BigInt(lo) | (BigInt(hi) << 32n);
      }
      const b = await this.readBytes(bar, offset, 8);
      if (b === undefined) return 0xffff_ffff_ffff_ffffn;
      return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    });
  }

  write32(bar: number, offset: number, value: number): void {
    if (this.paused) {
      this.held.push(() => this.doWrite32(bar, offset, value));
      return;
    }
    // The doorbell hot path: one store, no message, no closure.
    const b = this.binding;
    if (bar === 0 && b.doorbells !== undefined && offset >= b.doorbellStart && offset < b.doorbellEnd) {
      b.doorbells[(offset - b.doorbellStart) >>> 2] = value;
      this.counters.mmioDoorbells++;
      return;
    }
    this.doWrite32(bar, offset, value);
  }

  write64(bar: number, offset: number, value: bigint): void {
    if (this.paused) this.held.push(() => this.doWrite64(bar, offset, value));
    else this.doWrite64(bar, offset, value);
  }

  onInterrupt(handler: (vector: number) => void): void {
    this.handler = handler;
  }

  flush(): Promise<void> {
    return this.access(() => this.sync());
  }

  // ---------------------------------------------------------------- access helpers

  /** Runs `op` now, or holds it until `resume()`. */
  private access<T>(op: () => T | Promise<T>): Promise<T> {
    if (!this.paused) return Promise.resolve(op());
    return new Promise<T>((resolve) => this.held.push(() => resolve(op())));
  }

  private async sync(): Promise<void> {
    const waits = [...this.inflight];
    if (this.postedSinceSync && !this.detached) {
      this.postedSinceSync = false;
      // The server handles commands in order: a reply means every earlier posted write was applied.
      waits.push(this.readBytes(RegionIndex.CONFIG, 0, 4).then(noop));
    }
    await Promise.all(waits);
  }

  private async readBytes(index: number, offset: number, count: number): Promise<Uint8Array | undefined> {
    if (this.detached) return undefined;
    this.counters.regionReads++;
    try {
      const b = await this.binding.client.regionRead(index, offset, count);
      if (b.byteLength === count) return b;
      this.readFailed(index, offset, count, `short read of ${b.byteLength} bytes`, 0);
    } catch (e) {
      this.readFailed(index, offset, count, (e as Error).message, errnoOf(e));
    }
    return undefined;
  }

  private readFailed(index: number, offset: number, count: number, why: string, errno: number): void {
    this.counters.failedReads++;
    this.emit({
      name: "read-failed",
      level: "warn",
      detail: `region ${index} +0x${offset.toString(16)} (${count}): ${why}`,
      errno,
    });
  }

  /** Reads 1, 2 or 4 bytes little-endian; all ones when the read fails. */
  private async readNumber(index: number, offset: number, count: 1 | 2 | 4): Promise<number> {
    const b = await this.readBytes(index, offset, count);
    if (b === undefined) return count === 4 ? 0xffffffff : count === 2 ? 0xffff : 0xff;
    const v = new DataView(b.buffer, b.byteOffset, count);
    return count === 1 ? v.getUint8(0) : count === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
  }

  private post(index: number, offset: number, data: Uint8Array): void {
    if (this.detached) return;
    this.counters.postedWrites++;
    this.postedSinceSync = true;
    this.binding.client.regionWrite(index, offset, data, { posted: true }).catch((e: unknown) => {
      this.emit({
        name: "write-failed",
        level: "warn",
        detail: `region ${index} +0x${offset.toString(16)}: ${(e as Error).message}`,
        errno: errnoOf(e),
      });
    });
  }

  private doConfigWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void {
    const data = new Uint8Array(sizeBytes);
    const v = new DataView(data.buffer);
    if (sizeBytes === 1) v.setUint8(0, value & 0xff);
    else if (sizeBytes === 2) v.setUint16(0, value & 0xffff, true);
    else v.setUint32(0, value >>> 0, true);
    // The device sees the write first, then (MSI-X Enable) SET_IRQS — QEMU's order.
    this.post(RegionIndex.CONFIG, offset, data);
    const m = this.msix;
    if (m !== undefined && !this.detached && m.touchesControl(offset, sizeBytes))
      m.configWrite(offset, sizeBytes, value);
  }

  private doWrite32(bar: number, offset: number, value: number): void {
    const b = this.binding;
    if (bar === 0 && b.doorbells !== undefined && offset >= b.doorbellStart && offset < b.doorbellEnd) {
      b.doorbells[(offset - b.doorbellStart) >>> 2] = value;
      this.counters.mmioDoorbells++;
      return;
    }
    const m = this.msix;
    if (m?.inTable(bar, offset, 4)) {
      if (!this.detached) m.tableWrite32(offset, value);
      return;
    }
    if (m?.inPba(bar, offset, 4)) return; // PBA is read-only
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.post(bar, offset, data);
  }

  private doWrite64(bar: number, offset: number, value: bigint): void {
    const m = this.msix;
    const b = this.binding;
    const inDoorbells =
      bar === 0 && b.doorbells !== undefined && offset >= b.doorbellStart && offset < b.doorbellEnd;
    if (inDoorbells || (m !== undefined && (m.inTable(bar, offset, 8) || m.inPba(bar, offset, 8)))) {
      this.doWrite32(bar, offset, Number(value & 0xffffffffn));
      this.doWrite32(bar, offset + 4, Number((value >> 32n) & 0xffffffffn));
      return;
    }
    const data = new Uint8Array(8);
    new DataView(data.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    this.post(bar, offset, data);
  }

  private closeQuietly(fd: number): void {
    try {
      closeFdSync(fd);
    } catch {
      // not ours to worry about: the fd was already gone
    }
  }

  private emit(e: VfioUserPortEvent): void {
    try {
      this.options.log?.(e);
    } catch {
      // logging never breaks the port
    }
  }
}

function errnoOf(e: unknown): number {
  return e instanceof VfioUserError ? e.errno : 0;
}
