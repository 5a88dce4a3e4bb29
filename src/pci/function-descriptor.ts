/**
 * What a PCI function looks like: identity, BARs, MSI-X placement, optional SR-IOV, and how a VF
 * presents itself. `checkFunctionDescriptor` finds inconsistencies (our bugs) before anything is built.
 */
import { type BarSpec, checkBarSpecs } from "./bars.ts";
import { MSIX_MAX_VECTORS } from "./cap-msix.ts";
import { isUnsigned } from "./errors.ts";
import { PCI_MSIX_ENTRY_SIZE } from "./msix.ts";

export interface MsixDescriptor {
  /** Number of vectors, 1..2048 (Message Control Table Size = vectors - 1). */
  vectors: number;
  /** Index of the (low slot of the) BAR holding the table. */
  tableBar: number;
  /** Byte offset of the table in that BAR; multiple of 8. */
  tableOffset: number;
  /** Index of the BAR holding the PBA. */
  pbaBar: number;
  /** Byte offset of the PBA in that BAR; multiple of 8. */
  pbaOffset: number;
}

export interface SriovDescriptor {
  /** TotalVFs, 1..65535. */
  totalVfs: number;
  /** InitialVFs, ≤ totalVfs. Default `totalVfs`. */
  initialVfs?: number;
  /** VF Device ID. */
  vfDeviceId: number;
  /** First VF Offset (routing-ID distance PF → VF1), 1..65535. */
  firstVfOffset: number;
  /** VF Stride, 0..65535 (0 only makes sense with one VF). */
  vfStride: number;
  /** Size of each VF's BAR0/1 (64-bit), power of two ≥ 4096. */
  vfBar0SizeBytes: number;
  /** VF BAR0 prefetchable. Default false. */
  vfBar0Prefetchable?: boolean;
  /** Supported Page Sizes bit vector; must include bit 0 (4 KiB). Default 0x553. */
  supportedPageSizes?: number;
  /** Function Dependency Link. Default 0. */
  functionDependencyLink?: number;
}

export interface PciFunctionDescriptor {
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number;
  subsystemId: number;
  /** 24-bit Class Code: base class << 16 | sub-class << 8 | programming interface (NVMe 0x010802). */
  classCode: number;
  /** Revision ID, 0..255. */
  revision: number;
  /** Implemented 64-bit memory BARs. For a VF these describe the VF's share of the PF's VF BARs. */
  bars: BarSpec[];
  msix: MsixDescriptor;
  /** SR-IOV capability (physical functions only). */
  sriov?: SriovDescriptor;
  /** True for an SR-IOV Virtual Function. */
  isVirtualFunction: boolean;
  /**
   * A VF only: present as an ordinary function (real vendor/device ID, own BARs, memory decode and
   * INTx bits in Command) as VMMs do when they pass a VF to a guest (QEMU vfio-user). When false, the
   * VF follows SR-IOV 1.1 §3.4: Vendor/Device ID read 0xFFFF, BARs read 0, only Bus Master is writable
   * in Command. Default true.
   */
  presentAsPhysical?: boolean;
  /** Interrupt Pin, 0..4 (0 = no INTx). Default 1 (INTA) for a PF, 0 for a VF. */
  interruptPin?: number;
  /**
   * ARI capability with this Next Function Number, or false for none.
   * Default: present with next function 0 when `sriov` is set, absent otherwise.
   */
  ari?: { nextFunctionNumber: number } | false;
  /** Link reported by the PCIe capability. Default speed 4 (16 GT/s), width 4. */
  link?: { speed: number; width: number };
}

/** Returns what is wrong with `d`, or undefined if it can be built. */
export function checkFunctionDescriptor(d: PciFunctionDescriptor): string | undefined {
  for (const key of ["vendorId", "deviceId", "subsystemVendorId", "subsystemId"] as const) {
    if (!isUnsigned(d[key], 16)) return `${key} ${d[key]} is not a 16-bit value`;
  }
  if (!isUnsigned(d.classCode, 24)) return `classCode ${d.classCode} is not a 24-bit value`;
  if (!isUnsigned(d.revision, 8)) return `revision ${d.revision} is not an 8-bit value`;
  const barProblem = checkBarSpecs(d.bars);
  if (barProblem !== undefined) return barProblem;
  const msixProblem = checkMsix(d.msix, d.bars);
  if (msixProblem !== undefined) return msixProblem;
  if (
    d.interruptPin !== undefined &&
    (!Number.isInteger(d.interruptPin) || d.interruptPin < 0 || d.interruptPin > 4)
  ) {
    return `interruptPin ${d.interruptPin} is not 0..4`;
  }
  if (d.ari && !isUnsigned(d.ari.nextFunctionNumber, 8)) return "ari.nextFunctionNumber is not 0..255";
  if (d.link !== undefined) {
    if (!Number.isInteger(d.link.speed) || d.link.speed < 1 || d.link.speed > 5)
      return "link.speed is not 1..5";
    if (![1, 2, 4, 8, 12, 16, 32].includes(d.link.width)) return "link.width is not a PCIe link width";
  }
  if (d.sriov !== undefined) {
    if (d.isVirtualFunction) return "a virtual function cannot have an SR-IOV capability";
    return checkSriov(d.sriov);
  }
  return undefined;
}

function checkMsix(m: MsixDescriptor, bars: readonly BarSpec[]): string | undefined {
  if (!Number.isInteger(m.vectors) || m.vectors < 1 || m.vectors > MSIX_MAX_VECTORS) {
    return `msix.vectors ${m.vectors} is not 1..${MSIX_MAX_VECTORS}`;
  }
  const tableBytes = PCI_MSIX_ENTRY_SIZE * m.vectors;
  const pbaBytes = 8 * Math.ceil(m.vectors / 64);
  const table = bars.find((b) => b.index === m.tableBar);
  const pba = bars.find((b) => b.index === m.pbaBar);
  if (table === undefined) return `msix.tableBar ${m.tableBar} is not an implemented BAR`;
  if (pba === undefined) return `msix.pbaBar ${m.pbaBar} is not an implemented BAR`;
  for (const [name, offset, bytes, bar] of [
    ["table", m.tableOffset, tableBytes, table],
    ["pba", m.pbaOffset, pbaBytes, pba],
  ] as const) {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % 8 !== 0)
      return `msix.${name}Offset is not a multiple of 8`;
    if (offset + bytes > bar.sizeBytes) return `MSI-X ${name} does not fit in BAR ${bar.index}`;
  }
  if (
    m.tableBar === m.pbaBar &&
    m.tableOffset < m.pbaOffset + pbaBytes &&
    m.pbaOffset < m.tableOffset + tableBytes
  ) {
    return "MSI-X table and PBA overlap";
  }
  return undefined;
}

function checkSriov(s: SriovDescriptor): string | undefined {
  if (!Number.isInteger(s.totalVfs) || s.totalVfs < 1 || s.totalVfs > 0xffff)
    return "sriov.totalVfs is not 1..65535";
  if (s.initialVfs !== undefined && (!isUnsigned(s.initialVfs, 16) || s.initialVfs > s.totalVfs)) {
    return "sriov.initialVfs is not 0..totalVfs";
  }
  if (!isUnsigned(s.vfDeviceId, 16)) return "sriov.vfDeviceId is not a 16-bit value";
  if (!isUnsigned(s.firstVfOffset, 16) || s.firstVfOffset === 0) return "sriov.firstVfOffset is not 1..65535";
  if (!isUnsigned(s.vfStride, 16)) return "sriov.vfStride is not a 16-bit value";
  if (s.functionDependencyLink !== undefined && !isUnsigned(s.functionDependencyLink, 8)) {
    return "sriov.functionDependencyLink is not 0..255";
  }
  if (
    s.supportedPageSizes !== undefined &&
    (!isUnsigned(s.supportedPageSizes, 32) || (s.supportedPageSizes & 1) === 0)
  ) {
    return "sriov.supportedPageSizes must be a 32-bit vector including 4 KiB (bit 0)";
  }
  return checkBarSpecs([{ index: 0, sizeBytes: s.vfBar0SizeBytes, prefetchable: false }]);
}
