/**
 * MSI-X capability structure in config space (PCI Local Bus 3.0 §6.8.2; id 0x11, 12 bytes).
 * The table and PBA themselves live in a BAR (see `msix.ts`).
 *
 * Message Control: Table Size (N - 1) RO in bits 10:0, Function Mask bit 14 RW, MSI-X Enable bit 15 RW.
 * Table Offset/BIR and PBA Offset/BIR: RO, offset in bits 31:3 (QWORD aligned), BIR in bits 2:0.
 */
import type { Capability } from "./capabilities.ts";
import { PCI_CAP_ID_MSIX } from "./capabilities.ts";
import type { ConfigField, ConfigSpace } from "./config-space.ts";

export const PCI_MSIX_FLAGS = 0x02;
export const PCI_MSIX_TABLE = 0x04;
export const PCI_MSIX_PBA = 0x08;
export const PCI_MSIX_FLAGS_QSIZE = 0x07ff;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
/** Most vectors an MSI-X table can have. */
export const MSIX_MAX_VECTORS = 2048;

export interface MsixControl {
  /** MSI-X Enable. */
  enable: boolean;
  /** Function Mask. */
  functionMask: boolean;
}

export interface MsixCapabilityOptions {
  /** Number of table entries, 1..2048. */
  vectors: number;
  /** BAR index (BIR) holding the table, and byte offset in it (multiple of 8). */
  tableBar: number;
  tableOffset: number;
  /** BAR index (BIR) holding the PBA, and byte offset in it (multiple of 8). */
  pbaBar: number;
  pbaOffset: number;
  /** Called after an access that changed MSI-X Enable or Function Mask. */
  onControlChange: (control: MsixControl) => void;
}

export class MsixCapability implements Capability {
  readonly name = "msix";
  readonly id = PCI_CAP_ID_MSIX;
  readonly sizeBytes = 12;
  private messageControl: ConfigField | undefined;

  constructor(private readonly options: MsixCapabilityOptions) {}

  define(cs: ConfigSpace, offset: number): void {
    const o = this.options;
    const rw = PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL;
    this.messageControl = cs.defineField({
      name: "msix.messageControl",
      offset: offset + PCI_MSIX_FLAGS,
      width: 2,
      reset: (o.vectors - 1) & PCI_MSIX_FLAGS_QSIZE,
      writeMask: rw,
      onWrite: (ctx) => {
        if (((ctx.previous ^ ctx.next) & rw) !== 0) ctx.defer(() => o.onControlChange(this.control));
        return ctx.next;
      },
    });
    cs.defineField({
      name: "msix.tableOffsetBir",
      offset: offset + PCI_MSIX_TABLE,
      width: 4,
      reset: (o.tableOffset | o.tableBar) >>> 0,
    });
    cs.defineField({
      name: "msix.pbaOffsetBir",
      offset: offset + PCI_MSIX_PBA,
      width: 4,
      reset: (o.pbaOffset | o.pbaBar) >>> 0,
    });
  }

  /** MSI-X Enable and Function Mask as software last wrote them. */
  get control(): MsixControl {
    const v = this.messageControl?.get() ?? 0;
    return { enable: (v & PCI_MSIX_FLAGS_ENABLE) !== 0, functionMask: (v & PCI_MSIX_FLAGS_MASKALL) !== 0 };
  }
}
