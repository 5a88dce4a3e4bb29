/**
 * vfio-user wire constants (QEMU `docs/interop/vfio-user.rst`, "Commands", "Header" and the message
 * sections; structure flags reuse `<linux/vfio.h>` values). Numbers are the spec's; names drop the
 * `VFIO_USER_` / `VFIO_` prefixes.
 *
 * Compatibility rule: these values are fixed by protocol major version 0. Additions (new commands,
 * flags, capabilities) arrive with a minor version; nothing here may be renumbered.
 */

/** Protocol version we implement: major 0 (the only one defined), minor 2 (libvfio-user's current). */
export const VFIO_USER_MAJOR = 0;
export const VFIO_USER_MINOR = 2;

/** Size of the message header that precedes every command and reply. */
export const HEADER_BYTES = 16;

/** Command numbers (spec table "Commands"). 14 (the removed DIRTY_PAGES) is not assigned. */
export const Command = {
  VERSION: 1,
  DMA_MAP: 2,
  DMA_UNMAP: 3,
  DEVICE_GET_INFO: 4,
  DEVICE_GET_REGION_INFO: 5,
  DEVICE_GET_REGION_IO_FDS: 6,
  DEVICE_GET_IRQ_INFO: 7,
  DEVICE_SET_IRQS: 8,
  REGION_READ: 9,
  REGION_WRITE: 10,
  /** Server → client. */
  DMA_READ: 11,
  /** Server → client. */
  DMA_WRITE: 12,
  DEVICE_RESET: 13,
  REGION_WRITE_MULTI: 15,
  DEVICE_FEATURE: 16,
  MIG_DATA_READ: 17,
  MIG_DATA_WRITE: 18,
} as const;
export type Command = (typeof Command)[keyof typeof Command];

const commandNames = new Map<number, string>(Object.entries(Command).map(([k, v]) => [v, k]));

/** Spec name of a command number, or `UNKNOWN(n)`; for logs. */
export function commandName(command: number): string {
  return commandNames.get(command) ?? `UNKNOWN(${command})`;
}

/** True for a command number the spec defines (1–13, 15–18). */
export function isKnownCommand(command: number): command is Command {
  return commandNames.has(command);
}

/** Header `flags` field: bits 0–3 message type, bit 4 No_reply, bit 5 Error. */
export const HeaderFlag = {
  TYPE_MASK: 0xf,
  NO_REPLY: 1 << 4,
  ERROR: 1 << 5,
} as const;

/** Values of the header type bits (flags bits 0–3). */
export const MessageType = {
  COMMAND: 0,
  REPLY: 1,
} as const;

/** PCI region indexes (`VFIO_PCI_*_REGION_INDEX`). */
export const RegionIndex = {
  BAR0: 0,
  BAR1: 1,
  BAR2: 2,
  BAR3: 3,
  BAR4: 4,
  BAR5: 5,
  ROM: 6,
  CONFIG: 7,
  VGA: 8,
} as const;

/** `vfio_region_info.flags` (`VFIO_REGION_INFO_FLAG_*`). */
export const RegionFlag = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  MMAP: 1 << 2,
  CAPS: 1 << 3,
} as const;

/** Region-info capability ids (`VFIO_REGION_INFO_CAP_*`). */
export const RegionCapId = {
  SPARSE_MMAP: 1,
  TYPE: 2,
} as const;
/** Version of the sparse-mmap capability layout. */
export const SPARSE_MMAP_CAP_VERSION = 1;

/** PCI interrupt indexes (`VFIO_PCI_*_IRQ_INDEX`). */
export const IrqIndex = {
  INTX: 0,
  MSI: 1,
  MSIX: 2,
  ERR: 3,
  REQ: 4,
} as const;

/** `vfio_irq_info.flags` (`VFIO_IRQ_INFO_*`). */
export const IrqInfoFlag = {
  EVENTFD: 1 << 0,
  MASKABLE: 1 << 1,
  AUTOMASKED: 1 << 2,
  NORESIZE: 1 << 3,
} as const;

/** `vfio_irq_set.flags` (`VFIO_IRQ_SET_*`): exactly one DATA_* and one ACTION_* bit per request. */
export const SetIrqsFlag = {
  DATA_NONE: 1 << 0,
  DATA_BOOL: 1 << 1,
  DATA_EVENTFD: 1 << 2,
  ACTION_MASK: 1 << 3,
  ACTION_UNMASK: 1 << 4,
  ACTION_TRIGGER: 1 << 5,
} as const;
export const SET_IRQS_DATA_MASK = SetIrqsFlag.DATA_NONE | SetIrqsFlag.DATA_BOOL | SetIrqsFlag.DATA_EVENTFD;
export const SET_IRQS_ACTION_MASK =
  SetIrqsFlag.ACTION_MASK | SetIrqsFlag.ACTION_UNMASK | SetIrqsFlag.ACTION_TRIGGER;

/** `vfio_device_info.flags` (`VFIO_DEVICE_FLAGS_*`). */
export const DeviceInfoFlag = {
  RESET: 1 << 0,
  PCI: 1 << 1,
} as const;

/** DMA_MAP flags. */
export const DmaMapFlag = {
  READ: 1 << 0,
  WRITE: 1 << 1,
} as const;

/**
 * DMA_UNMAP flags. The spec calls the field unused; libvfio-user defines bit 0 (legacy dirty bitmap,
 * not supported here) and bit 1 `UNMAP_ALL` (address and size must then be 0).
 */
export const DmaUnmapFlag = {
  GET_DIRTY_BITMAP: 1 << 0,
  UNMAP_ALL: 1 << 1,
} as const;

/** DEVICE_FEATURE flags: bits 0–15 feature index, then GET / SET / PROBE. */
export const DeviceFeatureFlag = {
  MASK: 0xffff,
  GET: 1 << 16,
  SET: 1 << 17,
  PROBE: 1 << 18,
} as const;

/** Feature indexes usable over vfio-user (`VFIO_DEVICE_FEATURE_*`). */
export const DeviceFeature = {
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
} as const;

/** Linux errno values carried in the header `error` field of error replies. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  /** Same value as EOPNOTSUPP on Linux. */
  ENOTSUP: 95,
  EOPNOTSUPP: 95,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
} as const;

const errnoNames = new Map<number, string>();
for (const [k, v] of Object.entries(Errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);

/** Symbolic name of an errno value, or `errno n`; for logs and error messages. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** Capability defaults a peer assumes when the VERSION JSON omits a key (spec "Version"). */
export const CapabilityDefault = {
  MAX_MSG_FDS: 1,
  MAX_DATA_XFER_SIZE: 1048576,
  MAX_DMA_MAPS: 65535,
  PGSIZES: 4096,
} as const;
