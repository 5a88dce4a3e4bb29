/**
 * Progress of one migration for `nvmig migrate`: on a terminal, bars for RAM, device state and storage
 * (namespace data) bytes plus the current phase (cli-progress); otherwise one JSON line per phase and
 * per pre-copy iteration on stderr, so logs and CI keep a structured record.
 */
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { ProgressEvent } from "../orchestrator.ts";

export interface ProgressSink {
  onProgress(e: ProgressEvent): void;
  stop(): void;
}

const MiB = 1024 * 1024;

/** Bars when `tty`, JSON lines to `write` otherwise. `ramBytes`: guest RAM size (the RAM bar's total). */
export function progressSink(o: {
  tty: boolean;
  ramBytes: number;
  write: (line: string) => void;
  label: string;
}): ProgressSink {
  if (!o.tty) {
    return {
      onProgress: (e) => {
        if (e.kind === "phase") o.write(JSON.stringify({ event: "migration.phase", fn: o.label, ...e }));
        else
          o.write(
            JSON.stringify({
              event: "migration.iteration",
              fn: o.label,
              index: e.iteration.index,
              ramBytes: e.iteration.ramBytes,
              deviceBytes: e.iteration.deviceBytes,
              dirtyRatePagesPerSec: e.iteration.dirtyRatePagesPerSec,
              expectedDowntimeMs: e.iteration.expectedDowntimeMs,
              ramBytesTotal: e.ramBytesTotal,
              deviceBytesTotal: e.deviceBytesTotal,
            }),
          );
      },
      stop: () => {},
    };
  }
  const multi = new MultiBar(
    {
      format: " {name} |{bar}| {valueMiB}/{totalMiB} MiB {note}",
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
    },
    Presets.shades_classic,
  );
  const bar = (name: string, total: number): SingleBar =>
    multi.create(Math.max(1, total), 0, {
      name,
      valueMiB: "0.0",
      totalMiB: (total / MiB).toFixed(1),
      note: "",
    });
  const ram = bar("RAM          ", o.ramBytes);
  const device = bar("device+store ", 1);
  const phase = bar("phase        ", 1);
  return {
    onProgress: (e) => {
      if (e.kind === "phase") {
        phase.update(0, { note: e.phase, valueMiB: "", totalMiB: "" });
        return;
      }
      const ramTotal = Math.max(o.ramBytes, e.ramBytesTotal);
      ram.setTotal(ramTotal);
      ram.update(e.ramBytesTotal, {
        valueMiB: (e.ramBytesTotal / MiB).toFixed(1),
        totalMiB: (ramTotal / MiB).toFixed(1),
        note: `iteration ${e.iteration.index}, ${e.iteration.dirtyRatePagesPerSec} dirty pages/s`,
      });
      device.setTotal(Math.max(1, e.deviceBytesTotal));
      device.update(e.deviceBytesTotal, {
        valueMiB: (e.deviceBytesTotal / MiB).toFixed(1),
        totalMiB: (e.deviceBytesTotal / MiB).toFixed(1),
        note: `expected downtime ${e.iteration.expectedDowntimeMs} ms`,
      });
    },
    stop: () => multi.stop(),
  };
}
