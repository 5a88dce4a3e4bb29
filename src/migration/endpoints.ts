/**
 * The seams the orchestrator drives. The same migration loop works in process and across processes:
 * only these implementations differ.
 *
 *   DeviceEndpoint — a function's VFIO migration v2 portal (in process: `MigrationPortal`; over
 *                    vfio-user: DEVICE_FEATURE + MIG_DATA_READ/WRITE through a client).
 *   VmSource       — the running VM on the source: CPU dirty log over its RAM, page reads, vCPU pause.
 *   VmDestination  — where RAM pages go, and how the VM starts running there.
 */
import type { MigrationPortal } from "../vfio/portal.ts";
import type { MigState } from "../vfio/states.ts";

export type DeviceResult = { readonly ok: true } | { readonly ok: false; readonly errno: number };

export interface DeviceEndpoint {
  /** VFIO_MIGRATION_* flags (STOP_COPY 1, P2P 2, PRE_COPY 4). */
  migrationFlags(): Promise<number>;
  setState(
    target: MigState,
  ): Promise<
    { readonly ok: true } | { readonly ok: false; readonly errno: number; readonly reachedState: number }
  >;
  /** Reads up to `maxBytes` of the data stream; an empty result is the permanent end (STOP_COPY). */
  readData(
    maxBytes: number,
  ): Promise<
    { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly errno: number }
  >;
  writeData(bytes: Uint8Array): Promise<DeviceResult>;
  precopyInfo(): Promise<
    | { readonly ok: true; readonly initialBytes: bigint; readonly dirtyBytes: bigint }
    | { readonly ok: false; readonly errno: number }
  >;
  dataSize(): Promise<
    { readonly ok: true; readonly stopCopyLength: bigint } | { readonly ok: false; readonly errno: number }
  >;
  dmaLoggingStart(
    ranges: readonly { iova: bigint; length: bigint }[],
    pageSize: bigint,
  ): Promise<DeviceResult>;
  /** ORs the dirty bitmap of [iova, iova+length) at `pageSize` into `bitmap`, clearing the log. */
  dmaLoggingReport(iova: bigint, length: bigint, pageSize: bigint, bitmap: Uint8Array): Promise<DeviceResult>;
  dmaLoggingStop(): Promise<DeviceResult>;
  /** VFIO_DEVICE_RESET: back to RUNNING, sessions dropped. */
  reset(): Promise<void>;
}

export interface VmSource {
  /** Guest RAM size, bytes (a multiple of 4096). */
  readonly ramBytes: number;
  startDirtyLog(): void | Promise<void>;
  /** Read-and-clear: pages written by the CPU since the last call. */
  collectDirty(): Uint32Array | Promise<Uint32Array>;
  /** Pages dirty now, without clearing. */
  dirtyPageCount(): number | Promise<number>;
  stopDirtyLog(): void | Promise<void>;
  /**
   * The 4 KiB of page `page` (valid until the next call) — for a VM whose RAM this process can read.
   * Exactly one of `page` and `transferPages` is present.
   */
  page?(page: number): Uint8Array;
  /**
   * Moves these pages (or all of RAM) to the destination without this process (a VMM in another
   * process sends them over its own channel); resolves once the destination has them.
   */
  transferPages?(pages: readonly number[] | "all"): Promise<void>;
  /** Stops the vCPUs (downtime begins). */
  pauseVcpus(): Promise<void>;
  /** Lets the vCPUs run again on the source (rollback). */
  resumeVcpus(): void | Promise<void>;
}

export interface VmDestination {
  /** Stores pages (their bytes are copied before the call returns); with `VmSource.page` only. */
  writePages?(pages: readonly number[], bytes: readonly Uint8Array[]): Promise<void>;
  /** The device runs on the destination: start the vCPUs there (downtime ends). */
  start(): Promise<void>;
  /** Migration failed: drop whatever was received. */
  discard(): Promise<void>;
}

/** A `MigrationPortal` (in process) as a `DeviceEndpoint`. */
export function portalEndpoint(p: MigrationPortal): DeviceEndpoint {
  return {
    migrationFlags: async () => p.migrationFlags,
    setState: (t) => p.setState(t),
    readData: (n) => p.readData(n),
    writeData: (b) => p.writeData(b),
    precopyInfo: () => p.precopyInfo(),
    dataSize: () => p.dataSize(),
    dmaLoggingStart: (r, ps) => p.dmaLoggingStart(r, ps),
    dmaLoggingReport: (i, l, ps, b) => p.dmaLoggingReport(i, l, ps, b),
    dmaLoggingStop: () => p.dmaLoggingStop(),
    reset: () => p.reset(),
  };
}
