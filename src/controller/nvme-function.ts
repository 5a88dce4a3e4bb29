/**
 * An NVMe PCI function: the PCI model (config space, BARs, MSI-X, SR-IOV on the PF) composed with the
 * NVMe controller behind BAR0. This is what a transport exports (vfio-user) or a VMM attaches in process.
 *
 * BAR layout (both 64-bit memory BARs, sizes powers of two):
 *   BAR0 (16 KiB): controller properties at 0x0000–0x0FFF (trapped), doorbells at 0x1000–0x1FFF
 *                  (one page, sparse-mmappable over vfio-user), rest reserved (reads 0).
 *   BAR4: MSI-X table at offset 0, PBA at the next 4 KiB boundary after the table.
 *
 * Interrupts: the controller signals a vector; the MSI-X table applies masking and pending bits;
 * an unmasked message reaches `onInterrupt` listeners (in-process VMM) — or, when a transport manages
 * MSI-X itself (vfio-user clients emulate the table), `setDirectInterrupts` routes vectors straight out.
 */
import type { Dma } from "../memory/dma.ts";
import { PciFunction, type PciFunctionSnapshot } from "../pci/function.ts";
import type { PciFunctionDescriptor } from "../pci/function-descriptor.ts";
import { NvmeController } from "./controller.ts";
import type { FunctionStateHooks } from "./migration/controller-state.ts";
import type { Subsystem } from "./subsystem.ts";

export const BAR0_BYTES = 0x4000;
export const MSIX_BAR = 4;
/** NVMe class code: mass storage (01h), NVM (08h), NVM Express I/O controller (02h). */
export const NVME_CLASS_CODE = 0x010802;
export const PF_DEVICE_ID = 0x0001;
export const VF_DEVICE_ID = 0x0002;

export interface NvmeFunctionOptions {
  cntlid: number;
  primary: boolean;
  subsystem: Subsystem;
  dma: Dma;
  /** I/O queue pairs the controller supports (a secondary gets NVQ − 1 when it goes online). */
  maxIoQueuePairs: number;
  /** MSI-X table size of the function (range 1..2048). */
  msixVectors: number;
  /** PF only: TotalVFs of the SR-IOV capability. */
  totalVfs?: number;
  /** VF number (1-based) for a secondary. */
  vfn?: number;
}

export function msixLayout(vectors: number): { tableOffset: number; pbaOffset: number; barBytes: number } {
  const tableBytes = Math.ceil((vectors * 16) / 4096) * 4096;
  const pbaBytes = Math.ceil((Math.ceil(vectors / 64) * 8) / 4096) * 4096;
  let bar = 4096;
  while (bar < tableBytes + pbaBytes) bar *= 2;
  return { tableOffset: 0, pbaOffset: tableBytes, barBytes: bar };
}

export class NvmeFunction {
  readonly pci: PciFunction;
  readonly controller: NvmeController;
  readonly dma: Dma;
  private listeners: ((vector: number) => void)[] = [];
  private direct: ((vector: number) => void) | undefined;

  constructor(opts: NvmeFunctionOptions) {
    this.dma = opts.dma;
    const id = opts.subsystem.identity;
    const layout = msixLayout(opts.msixVectors);
    const descriptor: PciFunctionDescriptor = {
      vendorId: id.vid,
      deviceId: opts.primary ? PF_DEVICE_ID : VF_DEVICE_ID,
      subsystemVendorId: id.ssvid,
      subsystemId: opts.primary ? PF_DEVICE_ID : VF_DEVICE_ID,
      classCode: NVME_CLASS_CODE,
      revision: 1,
      bars: [
        { index: 0, sizeBytes: BAR0_BYTES, prefetchable: false },
        { index: MSIX_BAR, sizeBytes: layout.barBytes, prefetchable: false },
      ],
      msix: {
        vectors: opts.msixVectors,
        tableBar: MSIX_BAR,
        tableOffset: layout.tableOffset,
        pbaBar: MSIX_BAR,
        pbaOffset: layout.pbaOffset,
      },
      isVirtualFunction: !opts.primary,
      ...(opts.primary && (opts.totalVfs ?? 0) > 0
        ? {
            sriov: {
              totalVfs: opts.totalVfs!,
              vfDeviceId: VF_DEVICE_ID,
              firstVfOffset: 1,
              vfStride: 1,
              vfBar0SizeBytes: BAR0_BYTES,
            },
          }
        : {}),
    };
    this.pci = new PciFunction(descriptor, {
      onMsixMessage: (vector) => this.deliver(vector),
      onFunctionLevelReset: () => this.functionLevelReset(),
    });
    this.controller = new NvmeController({
      cntlid: opts.cntlid,
      primary: opts.primary,
      subsystem: opts.subsystem,
      dma: opts.dma,
      maxIoQueuePairs: opts.maxIoQueuePairs,
      msixVectors: opts.msixVectors,
    });
    this.controller.setInterruptSink((v) => {
      if (this.direct !== undefined) this.direct(v);
      else this.pci.signal(v);
    });
    this.controller.functionState = this.stateHooks();
  }

  /** Adds a listener for MSI-X messages that pass the function's table (in-process VMMs). */
  onInterrupt(listener: (vector: number) => void): () => void {
    this.listeners.push(listener);
    return () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
    };
  }

  /**
   * Routes every controller interrupt straight to `sink`, bypassing this function's MSI-X table
   * (for transports whose client emulates the table, as QEMU's vfio-user client does). `undefined`
   * restores table delivery.
   */
  setDirectInterrupts(sink: ((vector: number) => void) | undefined): void {
    this.direct = sink;
  }

  private deliver(vector: number): void {
    for (const l of this.listeners) l(vector);
  }

  /** Function Level Reset (Initiate FLR, or a transport's device reset): the controller resets fully. */
  private functionLevelReset(): void {
    const c = this.controller;
    c.controllerReset("function-level-reset");
    c.aqa = 0;
    c.asq = 0;
    c.acq = 0;
  }

  /** Resets the whole function as a transport's DEVICE_RESET does (config space, MSI-X, controller). */
  reset(): void {
    this.pci.functionLevelReset();
  }

  // ---------------------------------------------------------------- BAR access

  /** Reads `sizeBytes` (4 or 8) from BAR `bar` at `offset`; unimplemented space reads 0. */
  barRead32(bar: number, offset: number): number {
    if (bar === 0) {
      if (offset < 0x2000) return this.controller.read32(offset);
      return 0;
    }
    return this.pci.msixRead(bar, offset, 4) ?? 0;
  }

  barRead64(bar: number, offset: number): bigint {
    return BigInt(this.barRead32(bar, offset)) | (BigInt(this.barRead32(bar, offset + 4)) << 32n);
  }

  barWrite32(bar: number, offset: number, value: number): void {
    if (bar === 0) {
      if (offset < 0x2000) this.controller.write32(offset, value);
      return;
    }
    this.pci.msixWrite(bar, offset, 4, value);
  }

  barWrite64(bar: number, offset: number, value: bigint): void {
    if (bar === 0 && offset < 0x1000) {
      this.controller.write64(offset, value);
      return;
    }
    this.barWrite32(bar, offset, Number(value & 0xffffffffn));
    this.barWrite32(bar, offset + 4, Number(value >> 32n));
  }

  configRead(offset: number, sizeBytes: 1 | 2 | 4): number {
    return this.pci.configRead(offset, sizeBytes) ?? 0xffffffff;
  }

  configWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void {
    this.pci.configWrite(offset, sizeBytes, value);
  }

  // ---------------------------------------------------------------- migration

  private stateHooks(): FunctionStateHooks {
    return {
      capture: () => this.pci.snapshot({ compact: true }),
      validate: (s) => {
        const r = this.pci.validateSnapshot(s);
        return r.ok ? undefined : r.error.message;
      },
      restore: (s) => {
        this.pci.restore(s as PciFunctionSnapshot);
      },
    };
  }
}
