/**
 * `nvmig demo` — the main job on built-in defaults, as real processes on loopback: `nvmig host` A and B
 * (each an NVMe subsystem with a PF and VF1 online, a shared namespace file, the controlling-function
 * agent serving gRPC on a UNIX socket), a VM process (`nvmig vm`) running a verified mixed workload on
 * host A's VF1; a live migration to host B out of band (the orchestrator drives the two agents; a
 * destination VMM process receives guest RAM and the guest over TCP), then back to host A in band (the
 * VMMs' VFIO v2 portals over vfio-user), while the workload keeps running; finally every block ever
 * acknowledged is re-read and checked. Prints a summary (or one JSON object with `--json`) and writes
 * `reports/nvmig-demo-report.html`. See `process-demo.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DemoOptions, EntryExit } from "../cli/types.ts";
import { renderHtmlReport } from "../migration/html-report.ts";
import type { MigrationReport } from "../migration/report.ts";
import { runProcessDemo } from "./process-demo.ts";

export interface DemoResult {
  verified: boolean;
  ops: number;
  lostWrites: number;
  badReads: number;
  duplicateCompletions: number;
  missingCompletions: number;
  iops: number;
  /** The first migration (A → B). */
  migration: Pick<
    MigrationReport,
    "downtimeMs" | "deviceDowntimeMs" | "stateBytes" | "precopyIterations" | "bytesTransferred"
  >;
  /** Path of the HTML report written (when asked for). */
  reportPath?: string;
  migrations: {
    path: MigrationReport["path"];
    from: string;
    to: string;
    result: MigrationReport["result"];
    downtimeMs: number;
    deviceDowntimeMs: number;
    totalMs: number;
    bytesTransferred: number;
    stateBytes: number;
    precopyIterations: number;
  }[];
}

export async function runDemoScenario(
  o: { runMs?: number; log?: (line: string) => void; reportDir?: string } = {},
): Promise<DemoResult> {
  const log = o.log ?? (() => {});
  const d = await runProcessDemo({ runMs: o.runMs ?? 1000, log });
  const [first, second] = d.reports as [MigrationReport, MigrationReport];
  let reportPath: string | undefined;
  if (o.reportDir !== undefined) {
    mkdirSync(o.reportDir, { recursive: true });
    reportPath = join(o.reportDir, "nvmig-demo-report.html");
    writeFileSync(
      reportPath,
      renderHtmlReport("nvmig demo — live migration of an NVMe VF between host processes", d.reports, {
        verified: d.verified,
        ops: d.ops,
        lostWrites: d.lostWrites,
        badReads: d.badReads,
      }),
    );
    log(`HTML report: ${reportPath}`);
  }
  const hops = [
    { r: first, from: "host-a", to: "host-b" },
    { r: second, from: "host-b", to: "host-a" },
  ];
  for (const { r, from, to } of hops) {
    log(
      `${r.path} ${from} → ${to}: downtime ${r.downtimeMs.toFixed(2)} ms (device ${r.deviceDowntimeMs.toFixed(2)} ms), ` +
        `total ${r.totalMs.toFixed(1)} ms, ${(r.bytesTransferred / 2 ** 20).toFixed(1)} MiB moved, state ${r.stateBytes} B`,
    );
  }
  return {
    ...(reportPath !== undefined ? { reportPath } : {}),
    verified: d.verified,
    ops: d.ops,
    lostWrites: d.lostWrites,
    badReads: d.badReads,
    duplicateCompletions: d.duplicateCompletions,
    missingCompletions: d.missingCompletions,
    iops: Number(d.vm.iops ?? 0),
    migration: {
      downtimeMs: first.downtimeMs,
      deviceDowntimeMs: first.deviceDowntimeMs,
      stateBytes: first.stateBytes,
      precopyIterations: first.precopyIterations,
      bytesTransferred: first.bytesTransferred,
    },
    migrations: hops.map(({ r, from, to }) => ({
      path: r.path,
      from,
      to,
      result: r.result,
      downtimeMs: r.downtimeMs,
      deviceDowntimeMs: r.deviceDowntimeMs,
      totalMs: r.totalMs,
      bytesTransferred: r.bytesTransferred,
      stateBytes: r.stateBytes,
      precopyIterations: r.precopyIterations,
    })),
  };
}

export async function runDemo(opts: DemoOptions): Promise<EntryExit> {
  const log = opts.json ? undefined : (line: string) => console.log(line);
  const reportDir = join(process.cwd(), "reports");
  const r = await runDemoScenario(log === undefined ? { reportDir } : { log, reportDir });
  if (opts.json) {
    console.log(JSON.stringify(r));
  } else {
    console.log(
      `verified: ${r.verified}  ops: ${r.ops}  lost writes: ${r.lostWrites}  bad reads: ${r.badReads}  ` +
        `duplicate completions: ${r.duplicateCompletions}  missing completions: ${r.missingCompletions}`,
    );
  }
  return r.verified ? 0 : 1;
}
