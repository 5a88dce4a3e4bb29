/**
 * The Type 0 (endpoint) configuration header, bytes 0x00..0x3F (PCI Local Bus 3.0 §6.2, PCIe Base
 * §7.5.1). BARs (0x10..0x27) are defined by `bars.ts`; this file defines every other header register.
 */
import type { ConfigField, ConfigSpace } from "./config-space.ts";

// Register offsets.
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
/** Class Code: 3 bytes, programming interface at 0x09, sub-class at 0x0A, base class at 0x0B. */
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BIST = 0x0f;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_CARDBUS_CIS = 0x28;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_MIN_GNT = 0x3e;
export const PCI_MAX_LAT = 0x3f;
/** First byte after the Type 0 header: standard capabilities live in 0x40..0xFF. */
export const PCI_STD_HEADER_BYTES = 0x40;

// Command register bits.
export const PCI_COMMAND_IO = 0x0001;
export const PCI_COMMAND_MEMORY = 0x0002;
export const PCI_COMMAND_MASTER = 0x0004;
export const PCI_COMMAND_PARITY = 0x0040;
export const PCI_COMMAND_SERR = 0x0100;
export const PCI_COMMAND_INTX_DISABLE = 0x0400;

// Status register bits.
export const PCI_STATUS_INTERRUPT = 0x0008;
export const PCI_STATUS_CAP_LIST = 0x0010;
export const PCI_STATUS_MASTER_DATA_PARITY = 0x0100;
export const PCI_STATUS_SIG_TARGET_ABORT = 0x0800;
export const PCI_STATUS_REC_TARGET_ABORT = 0x1000;
export const PCI_STATUS_REC_MASTER_ABORT = 0x2000;
export const PCI_STATUS_SIG_SYSTEM_ERROR = 0x4000;
export const PCI_STATUS_DETECTED_PARITY = 0x8000;
/** The RW1C error bits of Status. */
export const PCI_STATUS_ERROR_BITS =
  PCI_STATUS_MASTER_DATA_PARITY |
  PCI_STATUS_SIG_TARGET_ABORT |
  PCI_STATUS_REC_TARGET_ABORT |
  PCI_STATUS_REC_MASTER_ABORT |
  PCI_STATUS_SIG_SYSTEM_ERROR |
  PCI_STATUS_DETECTED_PARITY;

/** Command bits software can set on a physical function (I/O, memory, bus master, parity, SERR#, INTx disable). */
export const COMMAND_WRITE_MASK_PHYSICAL =
  PCI_COMMAND_IO |
  PCI_COMMAND_MEMORY |
  PCI_COMMAND_MASTER |
  PCI_COMMAND_PARITY |
  PCI_COMMAND_SERR |
  PCI_COMMAND_INTX_DISABLE;
/** Command bits software can set on an SR-IOV VF seen as such: only Bus Master (memory decode is the PF's VF MSE). */
export const COMMAND_WRITE_MASK_VIRTUAL = PCI_COMMAND_MASTER;

export interface Type0HeaderSpec {
  /** Vendor ID as read by software (0xFFFF for a VF seen as a VF). */
  vendorId: number;
  /** Device ID as read by software (0xFFFF for a VF seen as a VF). */
  deviceId: number;
  revisionId: number;
  /** 24-bit Class Code: base class << 16 | sub-class << 8 | programming interface (NVMe: 0x010802). */
  classCode: number;
  subsystemVendorId: number;
  subsystemId: number;
  /** Offset of the first standard capability, or 0 for none (then Status.Capabilities List reads 0). */
  capabilitiesPointer: number;
  /** Interrupt Pin: 0 none, 1..4 INTA..INTD. */
  interruptPin: number;
  /** RW bits of Command. Default `COMMAND_WRITE_MASK_PHYSICAL`. */
  commandWriteMask?: number;
  /** Whether Interrupt Line is RW (false: reads 0). Default true. */
  interruptLineWritable?: boolean;
  /** Called (after the access) when a write changed Command; receives the new and previous value. */
  onCommandWrite?: (command: number, previous: number) => void;
}

export interface Type0Header {
  command: ConfigField;
  status: ConfigField;
  interruptLine: ConfigField;
}

/** Defines all Type 0 header registers except the BARs. */
export function defineType0Header(cs: ConfigSpace, spec: Type0HeaderSpec): Type0Header {
  cs.defineField({ name: "header.vendorId", offset: PCI_VENDOR_ID, width: 2, reset: spec.vendorId });
  cs.defineField({ name: "header.deviceId", offset: PCI_DEVICE_ID, width: 2, reset: spec.deviceId });
  const onCommandWrite = spec.onCommandWrite;
  const command = cs.defineField({
    name: "header.command",
    offset: PCI_COMMAND,
    width: 2,
    writeMask: spec.commandWriteMask ?? COMMAND_WRITE_MASK_PHYSICAL,
    onWrite: (ctx) => {
      if (onCommandWrite !== undefined && ctx.next !== ctx.previous) {
        ctx.defer(() => onCommandWrite(ctx.next, ctx.previous));
      }
      return ctx.next;
    },
  });
  const status = cs.defineField({
    name: "header.status",
    offset: PCI_STATUS,
    width: 2,
    reset: spec.capabilitiesPointer !== 0 ? PCI_STATUS_CAP_LIST : 0,
    w1cMask: PCI_STATUS_ERROR_BITS,
  });
  cs.defineField({ name: "header.revisionId", offset: PCI_REVISION_ID, width: 1, reset: spec.revisionId });
  cs.defineField({
    name: "header.classProg",
    offset: PCI_CLASS_PROG,
    width: 1,
    reset: spec.classCode & 0xff,
  });
  cs.defineField({
    name: "header.classDevice",
    offset: PCI_CLASS_DEVICE,
    width: 2,
    reset: (spec.classCode >>> 8) & 0xffff,
  });
  // PCIe: Cache Line Size is RW with no effect; Latency Timer, BIST hardwired to 0; Header Type 0, single function.
  cs.defineField({ name: "header.cacheLineSize", offset: PCI_CACHE_LINE_SIZE, width: 1, writeMask: 0xff });
  cs.defineField({ name: "header.latencyTimer", offset: PCI_LATENCY_TIMER, width: 1 });
  cs.defineField({ name: "header.headerType", offset: PCI_HEADER_TYPE, width: 1, reset: 0x00 });
  cs.defineField({ name: "header.bist", offset: PCI_BIST, width: 1 });
  cs.defineField({ name: "header.cardbusCis", offset: PCI_CARDBUS_CIS, width: 4 });
  cs.defineField({
    name: "header.subsystemVendorId",
    offset: PCI_SUBSYSTEM_VENDOR_ID,
    width: 2,
    reset: spec.subsystemVendorId,
  });
  cs.defineField({ name: "header.subsystemId", offset: PCI_SUBSYSTEM_ID, width: 2, reset: spec.subsystemId });
  // No expansion ROM: the ROM BAR is read-only 0, so sizing it (all-ones write) reads back 0.
  cs.defineField({ name: "header.romAddress", offset: PCI_ROM_ADDRESS, width: 4 });
  cs.defineField({
    name: "header.capabilitiesPointer",
    offset: PCI_CAPABILITY_LIST,
    width: 1,
    reset: spec.capabilitiesPointer,
  });
  const interruptLine = cs.defineField({
    name: "header.interruptLine",
    offset: PCI_INTERRUPT_LINE,
    width: 1,
    writeMask: (spec.interruptLineWritable ?? true) ? 0xff : 0,
  });
  cs.defineField({
    name: "header.interruptPin",
    offset: PCI_INTERRUPT_PIN,
    width: 1,
    reset: spec.interruptPin,
  });
  cs.defineField({ name: "header.minGnt", offset: PCI_MIN_GNT, width: 1 });
  cs.defineField({ name: "header.maxLat", offset: PCI_MAX_LAT, width: 1 });
  return { command, status, interruptLine };
}
