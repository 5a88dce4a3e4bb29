/** Codes of `NvmeDriverError`, the one error type of the guest NVMe driver. */
export type NvmeDriverErrorCode =
  /** CSTS.RDY did not reach the wanted value within CAP.TO. */
  | "not-ready-timeout"
  /** CSTS.CFS (Controller Fatal Status) is set. */
  | "controller-fatal"
  /** Register reads return all ones: the function is gone. */
  | "device-gone"
  /** The controller lacks something the driver needs (NVM command set, 4 KiB pages, a namespace…). */
  | "unsupported"
  /** An admin command of the bring-up or shutdown completed with an error status. */
  | "admin-failed"
  /** An admin command did not complete within the admin timeout. */
  | "admin-timeout"
  /** CSTS.SHST did not report "shutdown complete" in time. */
  | "shutdown-timeout"
  /** A caller mistake: unknown queue or namespace, transfer too large, misaligned buffer. */
  | "invalid-argument"
  /** The driver is not initialised, is resetting, or was shut down. */
  | "not-ready";

export class NvmeDriverError extends Error {
  override readonly name = "NvmeDriverError";
  constructor(
    readonly code: NvmeDriverErrorCode,
    message: string,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.status = options?.status;
  }
  /** NVMe status of the failing command, for `admin-failed`. */
  readonly status: number | undefined;
}
