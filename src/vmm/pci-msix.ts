/**
 * PCI bring-up of a function by the guest: Memory Space + Bus Master enable, and MSI-X (PCI Local Bus
 * 3.0 §6.8.2, PCIe Base §7.7.2): find the capability through the capability list, program and unmask
 * the table entries in use, enable MSI-X with the function mask clear — the order Linux uses (enable
 * with the function masked, program the table, unmask the function).
 *
 * Not API: used by `GuestNvmeDriver`.
 */
import type { FunctionPort } from "./function-port.ts";

/** Config space offsets (type 0 header). */
const PCI_COMMAND = 0x04;
const PCI_STATUS = 0x06;
const PCI_CAPABILITY_LIST = 0x34;
/** Command register bits. */
const PCI_COMMAND_MEMORY = 1 << 1;
const PCI_COMMAND_MASTER = 1 << 2;
const PCI_COMMAND_INTX_DISABLE = 1 << 10;
/** Status register: Capabilities List. */
const PCI_STATUS_CAP_LIST = 1 << 4;
export const PCI_CAP_ID_MSIX = 0x11;
/** MSI-X capability: Message Control (+2), Table Offset/BIR (+4). */
const MSIX_MESSAGE_CONTROL = 2;
const MSIX_TABLE = 4;
const MSIX_CONTROL_TABLE_SIZE_MASK = 0x7ff;
const MSIX_CONTROL_FUNCTION_MASK = 1 << 14;
const MSIX_CONTROL_ENABLE = 1 << 15;
const MSIX_TABLE_BIR_MASK = 0x7;
/** Table entry: Message Address (+0, +4), Message Data (+8), Vector Control (+12, bit 0 Mask). */
export const MSIX_ENTRY_BYTES = 16;
/** x86 interrupt message address window; any value works for an emulated function. */
const MSI_ADDRESS = 0xfee00000;

export interface MsixInfo {
  /** Config space offset of the capability. */
  capOffset: number;
  /** Table Size (N, not 0's based). */
  tableSize: number;
  /** BAR holding the table, and the table's offset in it. */
  tableBar: number;
  tableOffset: number;
}

/** Sets Memory Space Enable and Bus Master Enable (and INTx Disable). */
export async function enablePciFunction(port: FunctionPort): Promise<void> {
  const cmd = await port.configRead(PCI_COMMAND, 2);
  port.configWrite(
    PCI_COMMAND,
    2,
    (cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE) & 0xffff,
  );
}

/** Walks the capability list for `capId`; returns its config space offset or undefined. */
export async function findCapability(port: FunctionPort, capId: number): Promise<number | undefined> {
  const status = await port.configRead(PCI_STATUS, 2);
  if ((status & PCI_STATUS_CAP_LIST) === 0) return undefined;
  let at = (await port.configRead(PCI_CAPABILITY_LIST, 1)) & 0xfc;
  for (let hops = 0; at !== 0 && hops < 48; hops++) {
    const header = await port.configRead(at, 2);
    if ((header & 0xff) === capId) return at;
    at = (header >>> 8) & 0xfc;
  }
  return undefined;
}

/** Reads the MSI-X capability, or undefined when the function has none. */
export async function readMsix(port: FunctionPort): Promise<MsixInfo | undefined> {
  const capOffset = await findCapability(port, PCI_CAP_ID_MSIX);
  if (capOffset === undefined) return undefined;
  const control = await port.configRead(capOffset + MSIX_MESSAGE_CONTROL, 2);
  const table = await port.configRead(capOffset + MSIX_TABLE, 4);
  return {
    capOffset,
    tableSize: (control & MSIX_CONTROL_TABLE_SIZE_MASK) + 1,
    tableBar: table & MSIX_TABLE_BIR_MASK,
    tableOffset: (table & ~MSIX_TABLE_BIR_MASK) >>> 0,
  };
}

/** Enables MSI-X with vectors 0..vectors-1 programmed (data = vector number) and unmasked. */
export async function enableMsix(port: FunctionPort, msix: MsixInfo, vectors: number): Promise<void> {
  const ctlAt = msix.capOffset + MSIX_MESSAGE_CONTROL;
  const control = await port.configRead(ctlAt, 2);
  port.configWrite(ctlAt, 2, (control | MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK) & 0xffff);
  for (let v = 0; v < Math.min(vectors, msix.tableSize); v++) {
    const at = msix.tableOffset + v * MSIX_ENTRY_BYTES;
    port.write32(msix.tableBar, at, MSI_ADDRESS);
    port.write32(msix.tableBar, at + 4, 0);
    port.write32(msix.tableBar, at + 8, v);
    port.write32(msix.tableBar, at + 12, 0);
  }
  port.configWrite(ctlAt, 2, (control | MSIX_CONTROL_ENABLE) & ~MSIX_CONTROL_FUNCTION_MASK & 0xffff);
  await port.flush();
}

/** Masks the function and disables MSI-X. */
export async function disableMsix(port: FunctionPort, msix: MsixInfo): Promise<void> {
  const ctlAt = msix.capOffset + MSIX_MESSAGE_CONTROL;
  const control = await port.configRead(ctlAt, 2);
  port.configWrite(ctlAt, 2, control & ~MSIX_CONTROL_ENABLE & 0xffff);
  await port.flush();
}
