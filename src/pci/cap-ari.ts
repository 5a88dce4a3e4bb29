/**
 * Alternative Routing-ID Interpretation extended capability (PCIe Base §7.8.8; id 0x000E, version 1,
 * 8 bytes). With ARI a device has up to 256 functions; each function's ARI capability names the next
 * function of the device (0 = last). No MFVC / ACS function groups: ARI Control reads 0.
 */
import type { ExtendedCapability } from "./capabilities.ts";
import { PCI_EXT_CAP_ID_ARI } from "./capabilities.ts";
import type { ConfigSpace } from "./config-space.ts";

export const PCI_ARI_CAP = 0x04;
export const PCI_ARI_CTRL = 0x06;

export class AriCapability implements ExtendedCapability {
  readonly name = "ari";
  readonly id = PCI_EXT_CAP_ID_ARI;
  readonly version = 1;
  readonly sizeBytes = 8;

  /** @param nextFunctionNumber Next Function Number (0..255; 0 = this is the last function). */
  constructor(private readonly nextFunctionNumber: number) {}

  define(cs: ConfigSpace, offset: number): void {
    cs.defineField({
      name: "ari.capability",
      offset: offset + PCI_ARI_CAP,
      width: 2,
      reset: (this.nextFunctionNumber & 0xff) << 8,
    });
    cs.defineField({ name: "ari.control", offset: offset + PCI_ARI_CTRL, width: 2 });
  }
}
