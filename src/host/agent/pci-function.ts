/**
 * PCI-level helpers of the agent, done as system software would through config space: the PCI name
 * of a VF (from the PF's SR-IOV First VF Offset / VF Stride) and Function Level Reset through the
 * function's PCI Express capability (Device Control bit 15, Initiate FLR).
 */

import {
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL_BCR_FLR,
} from "../../pci/cap-pcie.ts";
import { PCI_CAP_ID_EXP } from "../../pci/capabilities.ts";
import { PCI_CAPABILITY_LIST } from "../../pci/type0-header.ts";
import { SRIOV_CAP_OFFSET } from "../host-node.ts";

/** What these helpers need of a function (an `NvmeFunction` has it). */
export interface ConfigSpace {
  configRead(offset: number, sizeBytes: 1 | 2 | 4): number;
  configWrite(offset: number, sizeBytes: 1 | 2 | 4, value: number): void;
}

const SRIOV_FIRST_VF_OFFSET = 0x14;
const SRIOV_VF_STRIDE = 0x16;
/** Status register bit 4: Capabilities List. */
const PCI_STATUS = 0x06;
const PCI_STATUS_CAP_LIST = 0x10;

export interface PciAddress {
  domain: number;
  bus: number;
  device: number;
  function: number;
}

/** Parses "dddd:bb:dd.f" (hex domain, bus, device; decimal function 0..7). */
export function parsePciAddress(text: string): PciAddress {
  const m = /^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(text);
  if (m === null) throw new RangeError(`PCI address ${JSON.stringify(text)} is not dddd:bb:dd.f`);
  const device = Number.parseInt(m[3]!, 16);
  if (device > 0x1f) throw new RangeError(`PCI device ${device} above 31`);
  return {
    domain: Number.parseInt(m[1]!, 16),
    bus: Number.parseInt(m[2]!, 16),
    device,
    function: Number(m[4]),
  };
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, "0");
}

/** "dddd:bb:dd.f" of routing ID `rid` (bus:8 device:5 function:3) in `domain`. */
export function pciNameOfRoutingId(domain: number, rid: number): string {
  return `${hex(domain, 4)}:${hex((rid >> 8) & 0xff, 2)}:${hex((rid >> 3) & 0x1f, 2)}.${rid & 7}`;
}

/** PCI name of VF `vfn` (1-based) of the PF at `pf`, from the PF's SR-IOV First VF Offset / VF Stride. */
export function vfPciName(pfConfig: ConfigSpace, pf: PciAddress, vfn: number): string {
  const pfRid = (pf.bus << 8) | (pf.device << 3) | pf.function;
  const offset = pfConfig.configRead(SRIOV_CAP_OFFSET + SRIOV_FIRST_VF_OFFSET, 2);
  const stride = pfConfig.configRead(SRIOV_CAP_OFFSET + SRIOV_VF_STRIDE, 2);
  return pciNameOfRoutingId(pf.domain, (pfRid + offset + (vfn - 1) * stride) & 0xffff);
}

/** Config-space offset of the PCI Express capability, or undefined. */
function findPcieCapability(fn: ConfigSpace): number | undefined {
  if ((fn.configRead(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST) === 0) return undefined;
  let at = fn.configRead(PCI_CAPABILITY_LIST, 1) & 0xfc;
  for (let hops = 0; at !== 0 && hops < 48; hops++) {
    if (fn.configRead(at, 1) === PCI_CAP_ID_EXP) return at;
    at = fn.configRead(at + 1, 1) & 0xfc;
  }
  return undefined;
}

/**
 * Function Level Reset: sets Initiate FLR in Device Control (the other bits are written back as read).
 * Returns false when the function has no PCI Express capability or does not advertise FLR.
 */
export function initiateFunctionLevelReset(fn: ConfigSpace): boolean {
  const cap = findPcieCapability(fn);
  if (cap === undefined) return false;
  if ((fn.configRead(cap + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR) === 0) return false;
  const devctl = fn.configRead(cap + PCI_EXP_DEVCTL, 2);
  fn.configWrite(cap + PCI_EXP_DEVCTL, 2, (devctl | PCI_EXP_DEVCTL_BCR_FLR) & 0xffff);
  return true;
}
