/**
 * A small RAM-backed `VfioUserDeviceBackend` for protocol tests (no device logic worth the name):
 * 9 PCI regions (BAR0 0x4000 bytes with a doorbell page at 0x1000 as one sparse-mmap area, CONFIG
 * 256 bytes, the rest empty), 5 IRQ indexes, migration data as a byte queue, and bookkeeping of
 * every fd it holds so tests can check ownership. Synchronous unless `delayMs`-style hooks are
 * installed by the test. Not API.
 */
import type {
  DeviceInfo,
  DmaMapping,
  Errno,
  FeatureOutcome,
  IrqInfo,
  MaybePromise,
  RegionDescription,
  RegionWriteOutcome,
  SetIrqsRequest,
  VfioUserDeviceBackend,
} from "../device-backend.ts";
import {
  DeviceFeature,
  DeviceFeatureFlag,
  DeviceInfoFlag,
  Errno as E,
  IrqIndex,
  IrqInfoFlag,
  RegionFlag,
  RegionIndex,
  SET_IRQS_DATA_MASK,
  SetIrqsFlag,
} from "../protocol/constants.ts";

export const FAKE_BAR0_BYTES = 0x4000;
export const FAKE_CONFIG_BYTES = 256;
export const FAKE_MSIX_VECTORS = 16;

export interface FakeBackendOptions {
  closeFd: (fd: number) => void;
  /** fd offered for mmap of BAR0 (backend-owned, never closed by it). Default: BAR0 not mmappable. */
  bar0MmapFd?: number;
}

export class FakeBackend implements VfioUserDeviceBackend {
  readonly bar0 = new Uint8Array(FAKE_BAR0_BYTES);
  readonly config = new Uint8Array(FAKE_CONFIG_BYTES);
  /** Held DMA mappings by iova (including their fds). */
  readonly maps = new Map<number, DmaMapping>();
  /** Held eventfds by `${index}:${subindex}`. */
  readonly irqFds = new Map<string, number>();
  /** Human-readable call log. */
  readonly calls: string[] = [];
  migState = 2;
  migOut: Uint8Array = new Uint8Array(0);
  migIn: number[] = [];
  detachCount = 0;
  resetCount = 0;
  /** Optional overrides installed by tests. */
  hooks: {
    regionWrite?: (
      index: number,
      offset: number,
      data: Uint8Array,
    ) => MaybePromise<Errno | RegionWriteOutcome>;
    regionRead?: (index: number, offset: number, count: number) => MaybePromise<Uint8Array | Errno>;
    dmaMap?: (m: DmaMapping) => Errno;
    reset?: () => MaybePromise<Errno>;
  } = {};

  constructor(private readonly options: FakeBackendOptions) {}

  deviceInfo(): DeviceInfo {
    return { flags: DeviceInfoFlag.PCI | DeviceInfoFlag.RESET, numRegions: 9, numIrqs: 5 };
  }

  regionInfo(index: number): RegionDescription | undefined {
    if (index === RegionIndex.BAR0) {
      const rw = RegionFlag.READ | RegionFlag.WRITE;
      const fd = this.options.bar0MmapFd;
      if (fd === undefined) return { flags: rw, sizeBytes: FAKE_BAR0_BYTES };
      return {
        flags: rw | RegionFlag.MMAP,
        sizeBytes: FAKE_BAR0_BYTES,
        mmapFd: fd,
        sparseAreas: [{ offset: 0x1000, sizeBytes: 0x1000 }],
      };
    }
    if (index === RegionIndex.CONFIG)
      return { flags: RegionFlag.READ | RegionFlag.WRITE, sizeBytes: FAKE_CONFIG_BYTES };
    if (index >= 0 && index < 9) return { flags: 0, sizeBytes: 0 };
    return undefined;
  }

  #bytesOf(index: number): Uint8Array | undefined {
    if (index === RegionIndex.BAR0) return this.bar0;
    if (index === RegionIndex.CONFIG) return this.config;
    return undefined;
  }

  regionRead(index: number, offset: number, count: number): MaybePromise<Uint8Array | Errno> {
    this.calls.push(`regionRead ${index} ${offset} ${count}`);
    if (this.hooks.regionRead !== undefined) return this.hooks.regionRead(index, offset, count);
    const b = this.#bytesOf(index);
    if (b === undefined) return E.EINVAL;
    return b.slice(offset, offset + count);
  }

  regionWrite(index: number, offset: number, data: Uint8Array): MaybePromise<Errno | RegionWriteOutcome> {
    this.calls.push(`regionWrite ${index} ${offset} ${data.byteLength}`);
    const b = this.#bytesOf(index);
    if (b === undefined) return E.EINVAL;
    b.set(data, offset);
    if (this.hooks.regionWrite !== undefined) return this.hooks.regionWrite(index, offset, data);
    return 0;
  }

  irqInfo(index: number): IrqInfo | undefined {
    switch (index) {
      case IrqIndex.INTX:
        return { flags: IrqInfoFlag.EVENTFD | IrqInfoFlag.MASKABLE | IrqInfoFlag.AUTOMASKED, count: 1 };
      case IrqIndex.MSI:
        return { flags: IrqInfoFlag.EVENTFD | IrqInfoFlag.NORESIZE, count: 1 };
      case IrqIndex.MSIX:
        return { flags: IrqInfoFlag.EVENTFD | IrqInfoFlag.NORESIZE, count: FAKE_MSIX_VECTORS };
      case IrqIndex.ERR:
      case IrqIndex.REQ:
        return { flags: IrqInfoFlag.EVENTFD, count: 1 };
      default:
        return undefined;
    }
  }

  setIrqs(r: SetIrqsRequest): Errno {
    this.calls.push(`setIrqs ${r.index} 0x${r.flags.toString(16)} ${r.start} ${r.count} fds=${r.fds.length}`);
    const data = r.flags & SET_IRQS_DATA_MASK;
    if (r.count === 0) {
      for (const [k, fd] of this.irqFds) {
        if (k.startsWith(`${r.index}:`)) {
          this.options.closeFd(fd);
          this.irqFds.delete(k);
        }
      }
      return 0;
    }
    if (data === SetIrqsFlag.DATA_EVENTFD && (r.flags & SetIrqsFlag.ACTION_TRIGGER) !== 0) {
      for (let i = 0; i < r.count; i++) {
        const key = `${r.index}:${r.start + i}`;
        const old = this.irqFds.get(key);
        if (old !== undefined) this.options.closeFd(old);
        const fd = r.fds[i];
        if (fd === undefined) this.irqFds.delete(key);
        else this.irqFds.set(key, fd);
      }
      return 0;
    }
    if (data === SetIrqsFlag.DATA_EVENTFD && r.fds.length > 0) {
      // mask/unmask eventfds are not supported by this device: refuse (the server closes the fds)
      return E.EINVAL;
    }
    return 0;
  }

  reset(): MaybePromise<Errno> {
    this.resetCount++;
    this.calls.push("reset");
    return this.hooks.reset?.() ?? 0;
  }

  dmaMap(m: DmaMapping): Errno {
    this.calls.push(`dmaMap ${m.iova} ${m.sizeBytes} fd=${m.fd ?? "-"}`);
    const hook = this.hooks.dmaMap?.(m) ?? 0;
    if (hook !== 0) return hook;
    if (this.maps.has(m.iova)) throw new Error("server passed an overlapping mapping");
    this.maps.set(m.iova, m);
    return 0;
  }

  dmaUnmap(iova: number, sizeBytes: number): Errno {
    this.calls.push(`dmaUnmap ${iova} ${sizeBytes}`);
    const m = this.maps.get(iova);
    if (m === undefined || m.sizeBytes !== sizeBytes) throw new Error("server passed an unknown mapping");
    if (m.fd !== undefined) this.options.closeFd(m.fd);
    this.maps.delete(iova);
    return 0;
  }

  feature(flags: number, data: Uint8Array): FeatureOutcome {
    const index = flags & DeviceFeatureFlag.MASK;
    const get = (flags & DeviceFeatureFlag.GET) !== 0;
    const set = (flags & DeviceFeatureFlag.SET) !== 0;
    const probe = (flags & DeviceFeatureFlag.PROBE) !== 0;
    this.calls.push(`feature ${index} get=${get} set=${set} probe=${probe}`);
    if (index === DeviceFeature.MIGRATION) {
      if (set) return { errno: E.EINVAL };
      if (probe) return { data };
      const out = new Uint8Array(8);
      out[0] = 1 | 4; // STOP_COPY | PRE_COPY
      return { data: out };
    }
    if (index === DeviceFeature.MIG_DEVICE_STATE) {
      if (probe) return { data };
      if (set) {
        if (data.byteLength < 8) return { errno: E.EINVAL };
        this.migState = new DataView(data.buffer, data.byteOffset, 8).getUint32(0, true);
        return { data };
      }
      const out = new Uint8Array(8);
      const v = new DataView(out.buffer);
      v.setUint32(0, this.migState, true);
      v.setUint32(4, 0xffffffff, true);
      return { data: out };
    }
    if (index === DeviceFeature.DMA_LOGGING_REPORT && get) {
      return { data: new Uint8Array(24 + 64) }; // iova, length, page_size + 8 bitmap words
    }
    return { errno: E.ENOTSUP };
  }

  migDataRead(sizeBytes: number): Uint8Array {
    const n = Math.min(sizeBytes, this.migOut.byteLength);
    const out = this.migOut.slice(0, n);
    this.migOut = this.migOut.slice(n);
    return out;
  }

  migDataWrite(bytes: Uint8Array): Errno {
    for (const b of bytes) this.migIn.push(b);
    return 0;
  }

  clientDetached(): void {
    this.detachCount++;
    this.calls.push("clientDetached");
    for (const m of this.maps.values()) if (m.fd !== undefined) this.options.closeFd(m.fd);
    this.maps.clear();
    for (const fd of this.irqFds.values()) this.options.closeFd(fd);
    this.irqFds.clear();
  }

  /** Every client fd this backend holds right now. */
  heldFds(): number[] {
    const out: number[] = [];
    for (const m of this.maps.values()) if (m.fd !== undefined) out.push(m.fd);
    for (const fd of this.irqFds.values()) out.push(fd);
    return out.sort((a, b) => a - b);
  }
}
