/**
 * PCI Express Capability, version 2 (PCIe Base 4.0 §7.5.3; id 0x10, 0x3C bytes), for an endpoint.
 *
 * Device Capabilities advertises Function Level Reset (bit 28). Device Control bit 15 (Initiate FLR)
 * is write-one-to-trigger: a write with the bit set calls `onInitiateFlr` once the access completes,
 * and the bit always reads 0. Device Status error bits are RW1C. Link registers report a plausible
 * trained link (speed/width from the options); Link Control / Link Control 2 and Max_Payload_Size are
 * kept across an FLR (PCIe Base §6.6.2). Slot and Root registers are absent (endpoint): they read 0.
 */
import type { Capability } from "./capabilities.ts";
import { PCI_CAP_ID_EXP } from "./capabilities.ts";
import type { ConfigSpace } from "./config-space.ts";

export const PCI_EXP_FLAGS = 0x02;
export const PCI_EXP_DEVCAP = 0x04;
export const PCI_EXP_DEVCTL = 0x08;
export const PCI_EXP_DEVSTA = 0x0a;
export const PCI_EXP_LNKCAP = 0x0c;
export const PCI_EXP_LNKCTL = 0x10;
export const PCI_EXP_LNKSTA = 0x12;
export const PCI_EXP_SLTCAP = 0x14;
export const PCI_EXP_SLTCTL = 0x18;
export const PCI_EXP_SLTSTA = 0x1a;
export const PCI_EXP_RTCTL = 0x1c;
export const PCI_EXP_RTCAP = 0x1e;
export const PCI_EXP_RTSTA = 0x20;
export const PCI_EXP_DEVCAP2 = 0x24;
export const PCI_EXP_DEVCTL2 = 0x28;
export const PCI_EXP_DEVSTA2 = 0x2a;
export const PCI_EXP_LNKCAP2 = 0x2c;
export const PCI_EXP_LNKCTL2 = 0x30;
export const PCI_EXP_LNKSTA2 = 0x32;
export const PCI_EXP_CAP_SIZEOF = 0x3c;

/** Capability version 2; Device/Port Type in bits 7:4. */
export const PCI_EXP_FLAGS_VERS2 = 0x0002;
/** Device/Port Type: PCI Express Endpoint. */
export const PCI_EXP_TYPE_ENDPOINT = 0x0;

/** Device Capabilities: Role-Based Error Reporting (bit 15). */
export const PCI_EXP_DEVCAP_RBER = 0x00008000;
/** Device Capabilities: Function Level Reset Capability (bit 28). */
export const PCI_EXP_DEVCAP_FLR = 0x10000000;
/** Device Capabilities: Extended Tag Field Supported (bit 5). */
export const PCI_EXP_DEVCAP_EXT_TAG = 0x00000020;

/** Device Control: Initiate Function Level Reset (bit 15). */
export const PCI_EXP_DEVCTL_BCR_FLR = 0x8000;
/** Device Control: Max_Payload_Size (bits 7:5). */
export const PCI_EXP_DEVCTL_PAYLOAD = 0x00e0;
/**
 * Device Control RW bits: error reporting enables (3:0), Relaxed Ordering (4), Max_Payload_Size (7:5),
 * Extended Tag (8), No Snoop (11), Max_Read_Request_Size (14:12).
 */
export const PCI_EXP_DEVCTL_WRITE_MASK = 0x79ff;
/** Device Control after reset: Relaxed Ordering, No Snoop, Max_Read_Request_Size 512 bytes. */
export const PCI_EXP_DEVCTL_RESET = 0x2810;
/** Device Status RW1C bits: Correctable / Non-Fatal / Fatal / Unsupported Request Detected. */
export const PCI_EXP_DEVSTA_ERROR_BITS = 0x000f;
/** Link Control RW bits: ASPM Control (1:0), RCB (3), Common Clock (6), Extended Synch (7). */
export const PCI_EXP_LNKCTL_WRITE_MASK = 0x00cb;
/** Link Capabilities: ASPM Optionality Compliance (bit 22). */
export const PCI_EXP_LNKCAP_ASPM_COMPLIANCE = 0x00400000;
/** Link Status: Slot Clock Configuration (bit 12). */
export const PCI_EXP_LNKSTA_SLC = 0x1000;
/** Device Capabilities 2: Completion Timeout Ranges A–D and Completion Timeout Disable supported. */
export const PCI_EXP_DEVCAP2_VALUE = 0x0000001f;
/** Device Control 2 RW bits: Completion Timeout Value (3:0), Completion Timeout Disable (4). */
export const PCI_EXP_DEVCTL2_WRITE_MASK = 0x001f;
/** Link Control 2 RW bits: Target Link Speed (3:0). */
export const PCI_EXP_LNKCTL2_WRITE_MASK = 0x000f;

export interface PcieCapabilityOptions {
  /** Max Link Speed encoding: 1 = 2.5, 2 = 5, 3 = 8, 4 = 16, 5 = 32 GT/s. Default 4. */
  linkSpeed?: number;
  /** Max / negotiated link width in lanes: 1, 2, 4, 8, 16 or 32. Default 4. */
  linkWidth?: number;
  /** Called once the access that set Initiate FLR has completed. */
  onInitiateFlr: () => void;
}

export class PcieCapability implements Capability {
  readonly name = "pcie";
  readonly id = PCI_CAP_ID_EXP;
  readonly sizeBytes = PCI_EXP_CAP_SIZEOF;

  constructor(private readonly options: PcieCapabilityOptions) {}

  define(cs: ConfigSpace, offset: number): void {
    const speed = this.options.linkSpeed ?? 4;
    const width = this.options.linkWidth ?? 4;
    const onInitiateFlr = this.options.onInitiateFlr;
    const f = (
      name: string,
      at: number,
      w: 2 | 4,
      rest: { reset?: number; writeMask?: number; w1cMask?: number; stickyMask?: number } = {},
    ) => cs.defineField({ name: `pcie.${name}`, offset: offset + at, width: w, ...rest });

    f("flags", PCI_EXP_FLAGS, 2, { reset: PCI_EXP_FLAGS_VERS2 | (PCI_EXP_TYPE_ENDPOINT << 4) });
    // Max_Payload_Size Supported 256 bytes (001b), L0s/L1 acceptable latency "no limit" (7/7).
    f("deviceCapabilities", PCI_EXP_DEVCAP, 4, {
      reset:
        (0x1 | PCI_EXP_DEVCAP_EXT_TAG | (7 << 6) | (7 << 9) | PCI_EXP_DEVCAP_RBER | PCI_EXP_DEVCAP_FLR) >>> 0,
    });
    cs.defineField({
      name: "pcie.deviceControl",
      offset: offset + PCI_EXP_DEVCTL,
      width: 2,
      reset: PCI_EXP_DEVCTL_RESET,
      writeMask: PCI_EXP_DEVCTL_WRITE_MASK,
      stickyMask: PCI_EXP_DEVCTL_PAYLOAD,
      onWrite: (ctx) => {
        if ((ctx.written & ctx.covered & PCI_EXP_DEVCTL_BCR_FLR) !== 0) ctx.defer(onInitiateFlr);
        return ctx.next;
      },
    });
    f("deviceStatus", PCI_EXP_DEVSTA, 2, { w1cMask: PCI_EXP_DEVSTA_ERROR_BITS });
    f("linkCapabilities", PCI_EXP_LNKCAP, 4, {
      reset: (speed | (width << 4) | PCI_EXP_LNKCAP_ASPM_COMPLIANCE) >>> 0,
    });
    f("linkControl", PCI_EXP_LNKCTL, 2, {
      writeMask: PCI_EXP_LNKCTL_WRITE_MASK,
      stickyMask: PCI_EXP_LNKCTL_WRITE_MASK,
    });
    f("linkStatus", PCI_EXP_LNKSTA, 2, { reset: speed | (width << 4) | PCI_EXP_LNKSTA_SLC });
    f("slotCapabilities", PCI_EXP_SLTCAP, 4);
    f("slotControl", PCI_EXP_SLTCTL, 2);
    f("slotStatus", PCI_EXP_SLTSTA, 2);
    f("rootControl", PCI_EXP_RTCTL, 2);
    f("rootCapabilities", PCI_EXP_RTCAP, 2);
    f("rootStatus", PCI_EXP_RTSTA, 4);
    f("deviceCapabilities2", PCI_EXP_DEVCAP2, 4, { reset: PCI_EXP_DEVCAP2_VALUE });
    f("deviceControl2", PCI_EXP_DEVCTL2, 2, { writeMask: PCI_EXP_DEVCTL2_WRITE_MASK });
    f("deviceStatus2", PCI_EXP_DEVSTA2, 2);
    // Supported Link Speeds Vector: bits 1..speed.
    f("linkCapabilities2", PCI_EXP_LNKCAP2, 4, { reset: ((1 << (speed + 1)) - 2) >>> 0 });
    f("linkControl2", PCI_EXP_LNKCTL2, 2, {
      reset: speed,
      writeMask: PCI_EXP_LNKCTL2_WRITE_MASK,
      stickyMask: PCI_EXP_LNKCTL2_WRITE_MASK,
    });
    f("linkStatus2", PCI_EXP_LNKSTA2, 2);
  }
}
