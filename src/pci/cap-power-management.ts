/**
 * PCI Power Management capability (PCI Bus Power Management Interface 1.2; id 0x01, 8 bytes).
 *
 * Supports D0 and D3hot only. PMCSR.PowerState is RW; a write of D1 or D2 (unsupported) completes
 * but is discarded (PM 1.2 §5.4.1). No_Soft_Reset is set: D3hot → D0 does not reset the function, so
 * no reset hook is needed on that transition. PME is not supported (PME_En and PME_Status read 0).
 */
import type { Capability } from "./capabilities.ts";
import { PCI_CAP_ID_PM } from "./capabilities.ts";
import type { ConfigField, ConfigSpace } from "./config-space.ts";
import type { PciEventSink } from "./events.ts";

export const PCI_PM_PMC = 0x02;
export const PCI_PM_CTRL = 0x04;
export const PCI_PM_BSE = 0x06;
export const PCI_PM_DATA = 0x07;
/** PMC: version 3 (PM 1.2), no D1/D2, no PME. */
export const PCI_PM_PMC_VALUE = 0x0003;
export const PCI_PM_CTRL_STATE_MASK = 0x0003;
export const PCI_PM_CTRL_NO_SOFT_RESET = 0x0008;
export const PCI_PM_STATE_D0 = 0;
export const PCI_PM_STATE_D3HOT = 3;

export class PowerManagementCapability implements Capability {
  readonly name = "pm";
  readonly id = PCI_CAP_ID_PM;
  readonly sizeBytes = 8;
  private pmcsr: ConfigField | undefined;

  constructor(private readonly onEvent: PciEventSink) {}

  define(cs: ConfigSpace, offset: number): void {
    cs.defineField({ name: "pm.pmc", offset: offset + PCI_PM_PMC, width: 2, reset: PCI_PM_PMC_VALUE });
    this.pmcsr = cs.defineField({
      name: "pm.pmcsr",
      offset: offset + PCI_PM_CTRL,
      width: 2,
      reset: PCI_PM_CTRL_NO_SOFT_RESET,
      writeMask: PCI_PM_CTRL_STATE_MASK,
      accepts: (value) => {
        const state = value & PCI_PM_CTRL_STATE_MASK;
        return state === PCI_PM_STATE_D0 || state === PCI_PM_STATE_D3HOT;
      },
      onWrite: (ctx) => {
        const requested = ctx.next & PCI_PM_CTRL_STATE_MASK;
        if (requested === PCI_PM_STATE_D0 || requested === PCI_PM_STATE_D3HOT) return ctx.next;
        this.onEvent({ name: "pci.pm.unsupported-power-state", requested });
        return (ctx.next & ~PCI_PM_CTRL_STATE_MASK) | (ctx.previous & PCI_PM_CTRL_STATE_MASK);
      },
    });
    cs.defineField({ name: "pm.bse", offset: offset + PCI_PM_BSE, width: 1 });
    cs.defineField({ name: "pm.data", offset: offset + PCI_PM_DATA, width: 1 });
  }

  /** Current power state: 0 (D0) or 3 (D3hot). */
  get powerState(): number {
    return (this.pmcsr?.get() ?? 0) & PCI_PM_CTRL_STATE_MASK;
  }
}
