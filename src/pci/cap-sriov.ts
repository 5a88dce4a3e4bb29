/**
 * Single Root I/O Virtualization extended capability (SR-IOV 1.1 §3.3; id 0x0010, version 1, 64 bytes),
 * on a physical function.
 *
 * Register map (offsets from the capability):
 *   0x04 SR-IOV Capabilities (RO 0)      0x08 SR-IOV Control (RW: VF Enable b0, VF MSE b3, ARI Capable Hierarchy b4)
 *   0x0A SR-IOV Status (RO 0)            0x0C InitialVFs (RO)     0x0E TotalVFs (RO)
 *   0x10 NumVFs (RW, ≤ TotalVFs)         0x12 Function Dependency Link (RO)
 *   0x14 First VF Offset (RO)            0x16 VF Stride (RO)      0x1A VF Device ID (RO)
 *   0x1C Supported Page Sizes (RO)       0x20 System Page Size (RW, one supported bit)
 *   0x24..0x38 VF BAR0..5 (BAR format, one VF's size; sized like BARs)
 *   0x3C VF Migration State Array Offset (RO 0: VF Migration not supported)
 *
 * While VF Enable is set, writes to NumVFs, ARI Capable Hierarchy and System Page Size are discarded
 * (the spec leaves them undefined; discarding keeps First VF Offset / VF Stride / VF BAR layout stable).
 * A NumVFs write above TotalVFs is discarded. A VF BAR decodes at least one System Page: when the page
 * size grows past a VF BAR's size, the BAR's size mask grows with it.
 *
 * After any access that changed VF Enable, VF MSE, ARI Capable Hierarchy or NumVFs, `onChange`
 * receives the new state.
 */
import { BarSet, type BarSpec } from "./bars.ts";
import type { ExtendedCapability } from "./capabilities.ts";
import { PCI_EXT_CAP_ID_SRIOV } from "./capabilities.ts";
import type { ConfigField, ConfigSpace } from "./config-space.ts";
import type { PciEventSink } from "./events.ts";

export const PCI_SRIOV_CAP = 0x04;
export const PCI_SRIOV_CTRL = 0x08;
export const PCI_SRIOV_STATUS = 0x0a;
export const PCI_SRIOV_INITIAL_VF = 0x0c;
export const PCI_SRIOV_TOTAL_VF = 0x0e;
export const PCI_SRIOV_NUM_VF = 0x10;
export const PCI_SRIOV_FUNC_LINK = 0x12;
export const PCI_SRIOV_VF_OFFSET = 0x14;
export const PCI_SRIOV_VF_STRIDE = 0x16;
export const PCI_SRIOV_VF_DID = 0x1a;
export const PCI_SRIOV_SUP_PGSIZE = 0x1c;
export const PCI_SRIOV_SYS_PGSIZE = 0x20;
export const PCI_SRIOV_BAR = 0x24;
export const PCI_SRIOV_VFM = 0x3c;
export const PCI_EXT_CAP_SRIOV_SIZEOF = 0x40;

export const PCI_SRIOV_CTRL_VFE = 0x0001;
export const PCI_SRIOV_CTRL_MSE = 0x0008;
export const PCI_SRIOV_CTRL_ARI = 0x0010;
/** Page sizes 4 KiB, 8 KiB, 64 KiB, 256 KiB, 1 MiB, 4 MiB (bit n = 2^(n+12) bytes). */
export const SRIOV_DEFAULT_SUPPORTED_PAGE_SIZES = 0x00000553;

/** What `onChange` reports. */
export interface SriovState {
  /** VF Enable. */
  vfEnable: boolean;
  /** NumVFs. */
  numVfs: number;
  /** VF Memory Space Enable. */
  vfMemorySpaceEnable: boolean;
  /** ARI Capable Hierarchy. */
  ariCapableHierarchy: boolean;
}

export interface SriovCapabilityOptions {
  /** TotalVFs, 1..65535. */
  totalVfs: number;
  /** InitialVFs. Default `totalVfs`. */
  initialVfs?: number;
  /** VF Device ID. */
  vfDeviceId: number;
  /** First VF Offset (routing-ID offset of VF1 from the PF). */
  firstVfOffset: number;
  /** VF Stride (routing-ID distance between consecutive VFs). */
  vfStride: number;
  /** Function Dependency Link (function number of the PF). Default 0. */
  functionDependencyLink?: number;
  /** Supported Page Sizes bit vector. Default `SRIOV_DEFAULT_SUPPORTED_PAGE_SIZES` (must include bit 0). */
  supportedPageSizes?: number;
  /** The VF BARs (sizes are per VF). */
  vfBars: readonly BarSpec[];
  onChange: (state: SriovState) => void;
  onEvent: PciEventSink;
}

export class SriovCapability implements ExtendedCapability {
  readonly name = "sriov";
  readonly id = PCI_EXT_CAP_ID_SRIOV;
  readonly version = 1;
  readonly sizeBytes = PCI_EXT_CAP_SRIOV_SIZEOF;
  private control: ConfigField | undefined;
  private numVfsField: ConfigField | undefined;
  private pageSize: ConfigField | undefined;
  private vfBarSet: BarSet | undefined;
  private lastReported = "";

  constructor(private readonly options: SriovCapabilityOptions) {}

  define(cs: ConfigSpace, offset: number): void {
    const o = this.options;
    const supported = o.supportedPageSizes ?? SRIOV_DEFAULT_SUPPORTED_PAGE_SIZES;
    const rwControl = PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI;
    const vfEnabled = (): boolean => ((this.control?.get() ?? 0) & PCI_SRIOV_CTRL_VFE) !== 0;
    const reportLater = (ctx: { defer(action: () => void): void }): void =>
      ctx.defer(() => this.reportIfChanged());

    cs.defineField({ name: "sriov.capabilities", offset: offset + PCI_SRIOV_CAP, width: 4 });
    this.control = cs.defineField({
      name: "sriov.control",
      offset: offset + PCI_SRIOV_CTRL,
      width: 2,
      writeMask: rwControl,
      onWrite: (ctx) => {
        let next = ctx.next;
        if ((ctx.previous & PCI_SRIOV_CTRL_VFE) !== 0 && ((ctx.previous ^ next) & PCI_SRIOV_CTRL_ARI) !== 0) {
          o.onEvent({
            name: "pci.sriov.write-ignored-vf-enabled",
            field: "sriov.control.ariCapableHierarchy",
          });
          next = (next & ~PCI_SRIOV_CTRL_ARI) | (ctx.previous & PCI_SRIOV_CTRL_ARI);
        }
        reportLater(ctx);
        return next;
      },
    });
    cs.defineField({ name: "sriov.status", offset: offset + PCI_SRIOV_STATUS, width: 2 });
    cs.defineField({
      name: "sriov.initialVfs",
      offset: offset + PCI_SRIOV_INITIAL_VF,
      width: 2,
      reset: o.initialVfs ?? o.totalVfs,
    });
    cs.defineField({
      name: "sriov.totalVfs",
      offset: offset + PCI_SRIOV_TOTAL_VF,
      width: 2,
      reset: o.totalVfs,
    });
    this.numVfsField = cs.defineField({
      name: "sriov.numVfs",
      offset: offset + PCI_SRIOV_NUM_VF,
      width: 2,
      writeMask: 0xffff,
      accepts: (value) => value <= o.totalVfs,
      onWrite: (ctx) => {
        if (ctx.next === ctx.previous) return ctx.next;
        if (vfEnabled()) {
          o.onEvent({ name: "pci.sriov.write-ignored-vf-enabled", field: "sriov.numVfs" });
          return ctx.previous;
        }
        if (ctx.next > o.totalVfs) {
          o.onEvent({ name: "pci.sriov.num-vfs-out-of-range", requested: ctx.next, totalVfs: o.totalVfs });
          return ctx.previous;
        }
        reportLater(ctx);
        return ctx.next;
      },
    });
    cs.defineField({
      name: "sriov.functionDependencyLink",
      offset: offset + PCI_SRIOV_FUNC_LINK,
      width: 1,
      reset: o.functionDependencyLink ?? 0,
    });
    cs.defineField({
      name: "sriov.firstVfOffset",
      offset: offset + PCI_SRIOV_VF_OFFSET,
      width: 2,
      reset: o.firstVfOffset,
    });
    cs.defineField({
      name: "sriov.vfStride",
      offset: offset + PCI_SRIOV_VF_STRIDE,
      width: 2,
      reset: o.vfStride,
    });
    cs.defineField({
      name: "sriov.vfDeviceId",
      offset: offset + PCI_SRIOV_VF_DID,
      width: 2,
      reset: o.vfDeviceId,
    });
    cs.defineField({
      name: "sriov.supportedPageSizes",
      offset: offset + PCI_SRIOV_SUP_PGSIZE,
      width: 4,
      reset: supported,
    });
    this.pageSize = cs.defineField({
      name: "sriov.systemPageSize",
      offset: offset + PCI_SRIOV_SYS_PGSIZE,
      width: 4,
      reset: 0x1,
      writeMask: supported,
      accepts: (value) => value !== 0 && (value & (value - 1)) === 0 && (value & ~supported) === 0,
      onWrite: (ctx) => {
        if (ctx.next === ctx.previous) return ctx.next;
        if (vfEnabled()) {
          o.onEvent({ name: "pci.sriov.write-ignored-vf-enabled", field: "sriov.systemPageSize" });
          return ctx.previous;
        }
        const requested = (ctx.previous & ~ctx.covered) | (ctx.written & ctx.covered);
        if (requested === 0 || (requested & (requested - 1)) !== 0 || (requested & ~supported) !== 0) {
          o.onEvent({ name: "pci.sriov.bad-system-page-size", requested: requested >>> 0, supported });
          return ctx.previous;
        }
        this.applyPageSize(requested);
        return requested;
      },
    });
    this.vfBarSet = new BarSet(cs, o.vfBars, {
      baseOffset: offset + PCI_SRIOV_BAR,
      namePrefix: "sriov.vfBar",
    });
    cs.defineField({ name: "sriov.vfMigrationStateArrayOffset", offset: offset + PCI_SRIOV_VFM, width: 4 });
    this.lastReported = JSON.stringify(this.state());
  }

  /** Current SR-IOV state. */
  state(): SriovState {
    const c = this.control?.get() ?? 0;
    return {
      vfEnable: (c & PCI_SRIOV_CTRL_VFE) !== 0,
      numVfs: this.numVfsField?.get() ?? 0,
      vfMemorySpaceEnable: (c & PCI_SRIOV_CTRL_MSE) !== 0,
      ariCapableHierarchy: (c & PCI_SRIOV_CTRL_ARI) !== 0,
    };
  }

  /** The VF BARs (addresses are VF1's; VF n adds (n-1) × size). */
  get vfBars(): BarSet {
    if (this.vfBarSet === undefined) throw new Error("SR-IOV capability used before define()");
    return this.vfBarSet;
  }

  /** Re-derives what follows config contents (VF BAR sizes from System Page Size) after a reset or restore. */
  resync(): void {
    this.applyPageSize(this.pageSize?.get() ?? 1);
  }

  /** Records the current state as already reported (after a restore, which runs no hooks). */
  markReported(): void {
    this.lastReported = JSON.stringify(this.state());
  }

  /** Calls `onChange` if the state differs from the last one reported. */
  reportIfChanged(): void {
    const state = this.state();
    const key = JSON.stringify(state);
    if (key === this.lastReported) return;
    this.lastReported = key;
    this.options.onChange(state);
  }

  private applyPageSize(pageSizeBits: number): void {
    const bit = 31 - Math.clz32(pageSizeBits || 1);
    const pageBytes = 2 ** (12 + bit);
    for (const bar of this.vfBars.list()) {
      const spec = this.options.vfBars.find((b) => b.index === bar.index);
      // Always re-applied: a config reset restores the reset masks behind the BAR object's back.
      bar.setSizeBytes(Math.max(spec?.sizeBytes ?? bar.sizeBytes, pageBytes));
    }
  }
}
