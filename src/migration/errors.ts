/**
 * The orchestrator's error type: one closed code set, the phase it happened in, and the cause.
 */
export type MigrationErrorCode =
  | "invalid-argument"
  | "source-device"
  | "destination-device"
  | "device-data"
  | "ram-transfer"
  | "dirty-tracking"
  | "vm-control"
  | "timeout"
  | "aborted";

export class MigrationError extends Error {
  override readonly name = "MigrationError";
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    /** The phase the migration was in (see `MigrationPhase`). */
    readonly phase: string,
    options?: { cause?: unknown },
  ) {
    super(`${code} in ${phase}: ${message}`, options);
  }

  static from(e: unknown, phase: string): MigrationError {
    if (e instanceof MigrationError) return e;
    return new MigrationError("aborted", e instanceof Error ? e.message : String(e), phase, { cause: e });
  }
}
