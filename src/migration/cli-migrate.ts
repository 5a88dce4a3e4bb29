/**
 * `nvmig migrate` (entry `runMigrateCommand`): one live migration between two running `nvmig host`
 * daemons of the function a running `nvmig vm` uses (see `cross-process/between-hosts.ts`). Prints
 * the report (one JSON object with `--json`, a summary otherwise), progress bars on a terminal or JSON
 * progress lines on stderr, and optionally the HTML report. Exit code 0 when the migration completed,
 * 1 when it was rolled back (the VM runs on at the source) or could not start.
 */
import { writeFileSync } from "node:fs";
import type { MigrateOptions } from "../cli/types.ts";
import { migrateBetweenHosts } from "./cross-process/between-hosts.ts";
import { progressSink } from "./cross-process/progress.ts";
import { renderHtmlReport } from "./html-report.ts";
import type { MigrationReport } from "./report.ts";

export interface MigrateCommandIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Draw progress bars (default: stderr is a TTY and not --json). */
  tty?: boolean;
}

export async function runMigrateCommand(opts: MigrateOptions, io: MigrateCommandIo = {}): Promise<number> {
  const out = io.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const err = io.err ?? ((l: string) => process.stderr.write(`${l}\n`));
  const tty = io.tty ?? (process.stderr.isTTY === true && !opts.json);
  let sink: ReturnType<typeof progressSink> | undefined;
  try {
    const result = await migrateBetweenHosts({
      from: opts.from,
      to: opts.to,
      functionId: opts.functionId,
      vmControl: opts.vmId,
      path: opts.path,
      maxDowntimeMs: opts.maxDowntimeMs,
      ...(opts.maxBandwidthBytesPerSecond === undefined
        ? {}
        : { maxBandwidthBytesPerSec: opts.maxBandwidthBytesPerSecond }),
      ...(opts.destControl === undefined ? {} : { destControl: opts.destControl }),
      ...(opts.leaseMs === undefined ? {} : { leaseMs: opts.leaseMs }),
      // Fault injection for kill -9 tests: stop (without exiting) once this phase is entered, so a
      // test's kill lands in it. Unset in normal use.
      ...(process.env.NVMIG_FAULT_STALL_AT_PHASE === undefined
        ? {}
        : {
            onPhase: async (p: string) => {
              if (p !== process.env.NVMIG_FAULT_STALL_AT_PHASE) return;
              err(`nvmig migrate: stalled at ${p} (NVMIG_FAULT_STALL_AT_PHASE)`);
              await new Promise(() => setInterval(() => {}, 1 << 30));
            },
          }),
      onProgress: (e) => {
        sink ??= progressSink({ tty, ramBytes: 0, write: err, label: opts.functionId });
        sink.onProgress(e);
      },
    });
    sink?.stop();
    const r = result.report;
    if (opts.reportHtml !== undefined) {
      writeFileSync(opts.reportHtml, renderHtmlReport(`nvmig migrate ${opts.functionId}`, [r]));
    }
    if (opts.json) out(JSON.stringify({ ...r, destinationVm: result.destination }));
    else out(summary(r, result.destination.control));
    return r.result === "completed" ? 0 : 1;
  } catch (e) {
    sink?.stop();
    const m = (e as Error).message;
    err(`nvmig migrate: ${m}`);
    if (opts.json) out(JSON.stringify({ result: "failed", error: m }));
    return 1;
  }
}

function summary(r: MigrationReport, destControl: string): string {
  const lines = [
    `migration ${r.functionLabel} (${r.path}, ${r.storage} storage): ${r.result.toUpperCase()}`,
    `  downtime ${r.downtimeMs} ms (device ${r.deviceDowntimeMs} ms), total ${r.totalMs} ms, ` +
      `${r.precopyIterations} pre-copy iterations${r.converged ? "" : " (not converged)"}`,
    `  moved ${(r.bytesTransferred / 1048576).toFixed(1)} MiB: RAM ${(r.ramBytesTransferred / 1048576).toFixed(1)} MiB, ` +
      `device state ${r.stateBytes} B, namespace data ${(r.namespaceBytesTransferred / 1048576).toFixed(1)} MiB`,
  ];
  if (r.result === "completed") lines.push(`  the VM runs on the destination: control socket ${destControl}`);
  if (r.error !== undefined) lines.push(`  error: ${r.error.code} in ${r.error.phase}: ${r.error.message}`);
  for (const w of r.warnings ?? []) lines.push(`  warning: ${w}`);
  return lines.join("\n");
}
