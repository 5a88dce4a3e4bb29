/**
 * Migration metrics as first-class data: phases advance only in legal order, each pre-copy iteration is
 * recorded (bytes, dirty rate, bandwidth, expected downtime), and the downtime is split into its parts.
 * The report is plain JSON (the CLI prints it; the HTML report renders it).
 */

/** Phases in the only order they may occur (a rollback may happen after any of them). */
export const MIGRATION_PHASES = [
  "setup",
  "destination-prepared",
  "precopy",
  "converged",
  "vcpus-paused",
  "device-stopped",
  "device-data-sent",
  "final-ram-sent",
  "destination-running",
  "vcpus-running",
  "source-cleaned",
  "completed",
] as const;
export type MigrationPhase = (typeof MIGRATION_PHASES)[number] | "rolled-back";

export interface IterationRecord {
  index: number;
  /** ms since the migration started. */
  startMs: number;
  durationMs: number;
  /** Pages sent in this iteration (CPU ∪ device dirty). */
  ramPages: number;
  ramBytes: number;
  /** Pages found dirty by the CPU log and by the device DMA log. */
  cpuDirtyPages: number;
  deviceDirtyPages: number;
  /** Device pre-copy stream bytes moved in this iteration. */
  deviceBytes: number;
  /** Dirty pages per second measured over this iteration. */
  dirtyRatePagesPerSec: number;
  /** Transfer rate measured over this iteration, bytes per ms. */
  bandwidthBytesPerMs: number;
  /** (pending RAM + device stop-copy bytes) ÷ bandwidth, ms. */
  expectedDowntimeMs: number;
}

export interface DowntimeBreakdown {
  /** Pausing the vCPUs. */
  vcpuPauseMs: number;
  /** Source device to STOP_COPY (suspend + controller state read). */
  deviceStopMs: number;
  /** Remaining device stream, source → destination. */
  deviceDataMs: number;
  /**
   * Last dirty RAM (CPU and device logs) → destination: the pages found dirty once the vCPUs stopped
   * (sent while the device still runs) plus the pages the device wrote until its suspend (sent after).
   * Only the second part falls within the device downtime.
   */
  finalRamMs: number;
  /** Destination device RESUMING → RUNNING (validate, Set Controller State, Resume). */
  deviceResumeMs: number;
  /** Starting the vCPUs on the destination. */
  vcpuStartMs: number;
}

export interface MigrationReport {
  path: "in-band" | "out-of-band";
  result: "completed" | "rolled-back";
  error?: { code: string; phase: string; message: string };
  /** Steps after the switchover that failed without affecting the VM (it runs on the destination). */
  warnings?: string[];
  functionLabel: string;
  storage: "shared" | "local";
  profile: "tp4159" | "intel";
  maxDowntimeMs: number;
  converged: boolean;
  totalMs: number;
  /** vCPUs stopped → vCPUs running on the destination. */
  downtimeMs: number;
  /** Source device suspended → destination device resumed. */
  deviceDowntimeMs: number;
  downtime: DowntimeBreakdown;
  /** Bytes of the device's controller state. */
  stateBytes: number;
  precopyIterations: number;
  bytesTransferred: number;
  ramBytesTransferred: number;
  deviceBytesTransferred: number;
  namespaceBytesTransferred: number;
  iterations: IterationRecord[];
  phases: { phase: MigrationPhase; atMs: number }[];
}

export class PhaseClock {
  readonly startedAt = performance.now();
  readonly phases: { phase: MigrationPhase; atMs: number }[] = [];
  private index = -1;

  now(): number {
    return performance.now() - this.startedAt;
  }

  /** Records `phase`; a phase out of order is our bug. */
  enter(phase: MigrationPhase): void {
    if (phase !== "rolled-back") {
      const i = MIGRATION_PHASES.indexOf(phase);
      if (i <= this.index) throw new Error(`migration phase ${phase} after ${MIGRATION_PHASES[this.index]}`);
      this.index = i;
    }
    this.phases.push({ phase, atMs: round(this.now()) });
  }

  get current(): MigrationPhase {
    return this.phases[this.phases.length - 1]?.phase ?? "setup";
  }
}

export function round(ms: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(ms * f) / f;
}
