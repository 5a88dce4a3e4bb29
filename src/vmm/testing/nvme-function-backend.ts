/**
 * A minimal `VfioUserDeviceBackend` over a real `NvmeFunction`, for the VMM side's tests and as the
 * benchmark's fallback when the host's exporter is not available. Not API.
 *
 * What it exports, QEMU-style:
 *   region 7   config space (4 KiB), accesses of 1/2/4 bytes go straight to the PCI model
 *   region 0   BAR0 (16 KiB): registers trapped; the doorbell page [0x1000, 0x2000) is one sparse-mmap
 *              area of a memfd that is also the controller's `doorbells` array — doorbells written by
 *              the client land there and a poller feeds them to the controller (`controller.poll()`)
 *   region 4   BAR4: MSI-X table and PBA (the client emulates the table; PBA reads land here)
 *   IRQ 2      MSI-X: eventfds from SET_IRQS; the controller's vectors go straight to them
 *              (`NvmeFunction.setDirectInterrupts`)
 *   DMA_MAP    with an fd: mmap'd and added to the function's `Dma` map
 *
 * Doorbell poller: `setImmediate` turns while there is work or doorbells moved recently (the last
 * `busyPollTurns` turns), otherwise a `setTimeout` of `idlePollMs`.
 */
import { closeSync } from "node:fs";
import type { NvmeFunction } from "../../controller/nvme-function.ts";
import { BAR0_BYTES, MSIX_BAR, msixLayout } from "../../controller/nvme-function.ts";
import { eventfdWrite } from "../../native/addon.ts";
import { GuestMemoryFd, type MappedRange, mapFdRange } from "../../native/guest-memory-fd.ts";
import type {
  DeviceInfo,
  DmaMapping,
  Errno,
  FeatureOutcome,
  IrqInfo,
  RegionDescription,
  SetIrqsRequest,
  VfioUserDeviceBackend,
} from "../../vfio-user/device-backend.ts";
import {
  DeviceInfoFlag,
  Errno as E,
  IrqIndex,
  IrqInfoFlag,
  RegionFlag,
  RegionIndex,
  SET_IRQS_DATA_MASK,
  SetIrqsFlag,
} from "../../vfio-user/protocol/constants.ts";

const CONFIG_BYTES = 4096;
const DOORBELL_OFFSET = 0x1000;
const DOORBELL_BYTES = 0x1000;

export interface NvmeFunctionBackendOptions {
  /** Poller turns on `setImmediate` after the last sign of work. Default 256. */
  busyPollTurns?: number;
  /** Poller period when idle, ms. Default 1. */
  idlePollMs?: number;
}

export class NvmeFunctionBackend implements VfioUserDeviceBackend {
  private readonly bar0File: GuestMemoryFd;
  private readonly doorbellMap: MappedRange;
  private readonly doorbells: Uint32Array;
  private readonly maps = new Map<number, { range: MappedRange; sizeBytes: number }>();
  private irqFds: number[] = [];
  private readonly msixVectors: number;
  private readonly busyPollTurns: number;
  private readonly idlePollMs: number;
  private idleTurns = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;
  /** Poller turns run (diagnostics). */
  pollTurns = 0;

  constructor(
    readonly fn: NvmeFunction,
    options: NvmeFunctionBackendOptions = {},
  ) {
    this.busyPollTurns = options.busyPollTurns ?? 256;
    this.idlePollMs = options.idlePollMs ?? 1;
    this.bar0File = GuestMemoryFd.create("nvmig-bar0", BAR0_BYTES);
    this.doorbellMap = mapFdRange(this.bar0File.fd, DOORBELL_OFFSET, DOORBELL_BYTES, true);
    this.doorbells = new Uint32Array(
      this.doorbellMap.bytes.buffer,
      this.doorbellMap.bytes.byteOffset,
      DOORBELL_BYTES / 4,
    );
    // Take over the doorbell page (keeping the values the controller holds now).
    this.doorbells.set(fn.controller.doorbells);
    fn.controller.doorbells = this.doorbells;
    this.msixVectors = fn.pci.descriptor.msix?.vectors ?? 0;
    this.schedule(false);
  }

  private schedule(busy: boolean): void {
    if (this.closed || this.timer !== undefined || this.immediate !== undefined) return;
    if (busy) this.immediate = setImmediate(this.turn);
    else {
      this.timer = setTimeout(this.turn, this.idlePollMs);
      this.timer.unref();
    }
  }

  private readonly turn = (): void => {
    this.timer = undefined;
    this.immediate = undefined;
    if (this.closed) return;
    this.pollTurns++;
    const c = this.fn.controller;
    let work = c.poll();
    if (!work) for (const sq of c.activeSqs) if (sq.head !== sq.tail) work = true;
    this.idleTurns = work ? 0 : this.idleTurns + 1;
    this.schedule(this.idleTurns < this.busyPollTurns);
  };

  /** Stops the poller, drops every mapping and fd, unmaps the doorbell page. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.clientDetached();
    // Hand the controller a private copy of its doorbells before the page goes away.
    this.fn.controller.doorbells = this.doorbells.slice();
    this.doorbellMap.unmap();
    this.bar0File.close();
  }

  deviceInfo(): DeviceInfo {
    return { flags: DeviceInfoFlag.PCI | DeviceInfoFlag.RESET, numRegions: 9, numIrqs: 5 };
  }

  regionInfo(index: number): RegionDescription | undefined {
    const rw = RegionFlag.READ | RegionFlag.WRITE;
    if (index === RegionIndex.BAR0) {
      return {
        flags: rw | RegionFlag.MMAP,
        sizeBytes: BAR0_BYTES,
        mmapFd: this.bar0File.fd,
        mmapOffset: 0,
        sparseAreas: [{ offset: DOORBELL_OFFSET, sizeBytes: DOORBELL_BYTES }],
      };
    }
    if (index === MSIX_BAR) return { flags: rw, sizeBytes: msixLayout(this.msixVectors).barBytes };
    if (index === RegionIndex.CONFIG) return { flags: rw, sizeBytes: CONFIG_BYTES };
    if (index >= 0 && index < 9) return { flags: 0, sizeBytes: 0 };
    return undefined;
  }

  regionRead(index: number, offset: number, count: number): Uint8Array | Errno {
    const out = new Uint8Array(count);
    const v = new DataView(out.buffer);
    if (index === RegionIndex.CONFIG) {
      if (count === 1 || count === 2 || count === 4) {
        const x = this.fn.configRead(offset, count);
        for (let i = 0; i < count; i++) out[i] = (x >>> (8 * i)) & 0xff;
      } else {
        for (let i = 0; i < count; i++) out[i] = this.fn.configRead(offset + i, 1) & 0xff;
      }
      return out;
    }
    if (index === RegionIndex.BAR0) {
      if (count === 4) v.setUint32(0, this.fn.barRead32(0, offset), true);
      else if (count === 8) v.setBigUint64(0, this.fn.barRead64(0, offset), true);
      else return E.EINVAL;
      return out;
    }
    if (index === MSIX_BAR) return this.fn.pci.msixReadBytes(MSIX_BAR, offset, count) ?? out;
    return E.EINVAL;
  }

  regionWrite(index: number, offset: number, data: Uint8Array): Errno {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const n = data.byteLength;
    if (index === RegionIndex.CONFIG) {
      if (n === 1 || n === 2 || n === 4) {
        const x = n === 1 ? v.getUint8(0) : n === 2 ? v.getUint16(0, true) : v.getUint32(0, true);
        this.fn.configWrite(offset, n, x);
      } else {
        for (let i = 0; i < n; i++) this.fn.configWrite(offset + i, 1, data[i]!);
      }
      return 0;
    }
    if (index === RegionIndex.BAR0) {
      if (n === 4) this.fn.barWrite32(0, offset, v.getUint32(0, true));
      else if (n === 8) this.fn.barWrite64(0, offset, v.getBigUint64(0, true));
      else return E.EINVAL;
      if (offset >= DOORBELL_OFFSET) this.kick();
      return 0;
    }
    if (index === MSIX_BAR) {
      this.fn.pci.msixWriteBytes(MSIX_BAR, offset, data);
      return 0;
    }
    return E.EINVAL;
  }

  private kick(): void {
    this.idleTurns = 0;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.schedule(true);
  }

  irqInfo(index: number): IrqInfo | undefined {
    if (index === IrqIndex.MSIX)
      return { flags: IrqInfoFlag.EVENTFD | IrqInfoFlag.NORESIZE, count: this.msixVectors };
    if (index >= 0 && index < 5) return { flags: IrqInfoFlag.EVENTFD, count: 0 };
    return undefined;
  }

  setIrqs(r: SetIrqsRequest): Errno {
    if (r.index !== IrqIndex.MSIX) return r.fds.length === 0 ? 0 : E.EINVAL;
    const data = r.flags & SET_IRQS_DATA_MASK;
    const trigger = (r.flags & SetIrqsFlag.ACTION_TRIGGER) !== 0;
    if (!trigger) return 0; // mask/unmask: the client masks on its side
    if (data === SetIrqsFlag.DATA_NONE && r.count === 0) {
      this.dropIrqs();
      return 0;
    }
    if (data !== SetIrqsFlag.DATA_EVENTFD) return E.EINVAL;
    for (let i = 0; i < r.count; i++) {
      const v = r.start + i;
      while (this.irqFds.length <= v) this.irqFds.push(-1);
      const old = this.irqFds[v]!;
      if (old >= 0) closeSync(old);
      this.irqFds[v] = r.fds[i] ?? -1;
    }
    this.fn.setDirectInterrupts(this.signal);
    return 0;
  }

  private readonly signal = (vector: number): void => {
    const fd = this.irqFds[vector];
    if (fd !== undefined && fd >= 0) eventfdWrite(fd);
  };

  private dropIrqs(): void {
    for (const fd of this.irqFds) if (fd >= 0) closeSync(fd);
    this.irqFds = [];
    this.fn.setDirectInterrupts(undefined);
  }

  reset(): Errno {
    this.fn.reset();
    return 0;
  }

  dmaMap(m: DmaMapping): Errno {
    if (m.fd === undefined) return E.ENOTSUP; // message DMA is not needed by our VMM
    try {
      const range = mapFdRange(m.fd, m.fileOffset, m.sizeBytes, true);
      if (!this.fn.dma.map(m.iova, range.bytes, (m.flags & 2) !== 0)) {
        range.unmap();
        return E.EEXIST;
      }
      closeSync(m.fd);
      this.maps.set(m.iova, { range, sizeBytes: m.sizeBytes });
      return 0;
    } catch {
      return E.EINVAL;
    }
  }

  dmaUnmap(iova: number, sizeBytes: number): Errno {
    const m = this.maps.get(iova);
    if (m !== undefined && m.sizeBytes === sizeBytes) {
      this.fn.dma.unmap(iova, sizeBytes);
      m.range.unmap();
      this.maps.delete(iova);
    }
    return 0;
  }

  feature(): FeatureOutcome {
    return { errno: E.ENOTSUP };
  }

  migDataRead(): Errno {
    return E.ENOTSUP;
  }

  migDataWrite(): Errno {
    return E.ENOTSUP;
  }

  clientDetached(): void {
    for (const [iova, m] of this.maps) {
      this.fn.dma.unmap(iova, m.sizeBytes);
      m.range.unmap();
    }
    this.maps.clear();
    this.dropIrqs();
  }
}
