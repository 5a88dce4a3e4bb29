/**
 * Linux VFIO migration v2 uAPI constants (`include/uapi/linux/vfio.h`), with the kernel's numbers.
 *
 * Names mirror the uAPI: `MigState.STOP_COPY` is `VFIO_DEVICE_STATE_STOP_COPY`, `MigFlag.P2P` is
 * `VFIO_MIGRATION_P2P`, `DeviceFeature.MIG_DATA_SIZE` is `VFIO_DEVICE_FEATURE_MIG_DATA_SIZE`, and so on.
 * These values are ABI: they travel unchanged in vfio-user DEVICE_FEATURE payloads.
 */

/** `enum vfio_device_mig_state`. */
export const MigState = {
  ERROR: 0,
  STOP: 1,
  RUNNING: 2,
  STOP_COPY: 3,
  RESUMING: 4,
  RUNNING_P2P: 5,
  PRE_COPY: 6,
  PRE_COPY_P2P: 7,
} as const;
export type MigState = (typeof MigState)[keyof typeof MigState];

/** Number of states (`VFIO_DEVICE_STATE_NR`); valid states are `0 .. MIG_STATE_COUNT-1`. */
export const MIG_STATE_COUNT = 8;

/** All states in numeric order. */
export const ALL_MIG_STATES: readonly MigState[] = [0, 1, 2, 3, 4, 5, 6, 7];

/** True if `n` is one of the eight state numbers. */
export function isMigState(n: number): n is MigState {
  return Number.isInteger(n) && n >= 0 && n < MIG_STATE_COUNT;
}

const STATE_NAMES = [
  "ERROR",
  "STOP",
  "RUNNING",
  "STOP_COPY",
  "RESUMING",
  "RUNNING_P2P",
  "PRE_COPY",
  "PRE_COPY_P2P",
] as const;

/** The uAPI name without the `VFIO_DEVICE_STATE_` prefix, or `"<n>"` for a number that is not a state. */
export function migStateName(n: number): string {
  return isMigState(n) ? STATE_NAMES[n] : `<${n}>`;
}

/** `VFIO_MIGRATION_*` bits reported by the MIGRATION feature (`flags:u64`). */
export const MigFlag = {
  /** Mandatory: STOP, STOP_COPY and RESUMING exist. */
  STOP_COPY: 1 << 0,
  /** RUNNING_P2P exists. */
  P2P: 1 << 1,
  /** PRE_COPY exists (and PRE_COPY_P2P when P2P is also set). */
  PRE_COPY: 1 << 2,
} as const;

/** Every defined `VFIO_MIGRATION_*` bit. */
export const MIG_FLAGS_ALL = MigFlag.STOP_COPY | MigFlag.P2P | MigFlag.PRE_COPY;

/** Feature indices carried in bits 0–15 of `vfio_device_feature.flags` (migration-related subset). */
export const DeviceFeature = {
  MIGRATION: 1,
  MIG_DEVICE_STATE: 2,
  DMA_LOGGING_START: 6,
  DMA_LOGGING_STOP: 7,
  DMA_LOGGING_REPORT: 8,
  MIG_DATA_SIZE: 9,
} as const;
export type DeviceFeature = (typeof DeviceFeature)[keyof typeof DeviceFeature];

/** Operation bits of `vfio_device_feature.flags`. */
export const FeatureFlag = {
  /** `VFIO_DEVICE_FEATURE_MASK`: the feature index. */
  MASK: 0xffff,
  GET: 1 << 16,
  SET: 1 << 17,
  PROBE: 1 << 18,
} as const;

/** `struct vfio_device_feature` header: `argsz:u32, flags:u32`. */
export const FEATURE_HEADER_BYTES = 8;

/** `VFIO_TYPE` (`';'`) and `VFIO_BASE`; ioctl numbers are `_IO(VFIO_TYPE, VFIO_BASE + n)`. */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;
/** `VFIO_DEVICE_RESET` on the device fd. */
export const VFIO_DEVICE_RESET = (VFIO_TYPE << 8) | (VFIO_BASE + 11);
/** `VFIO_DEVICE_FEATURE` on the device fd. */
export const VFIO_DEVICE_FEATURE = (VFIO_TYPE << 8) | (VFIO_BASE + 17);
/** `VFIO_MIG_GET_PRECOPY_INFO` on a saving data_fd (0x3B79). */
export const VFIO_MIG_GET_PRECOPY_INFO = (VFIO_TYPE << 8) | (VFIO_BASE + 21);

/**
 * Linux errno values the portal returns (positive; the wire or ioctl layer negates as it needs).
 * EINTR is ours: a SET interrupted by a device reset (see `MigrationPortal.setState`).
 */
export const Errno = {
  EINTR: 4,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ESPIPE: 29,
  ENOMSG: 42,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
} as const;
export type Errno = (typeof Errno)[keyof typeof Errno];

/** `data_fd` value meaning "no descriptor" (−1; on the vfio-user wire the same bytes read 0xffffffff). */
export const NO_DATA_FD = -1;
