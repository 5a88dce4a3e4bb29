/**
 * `nvmig demo` — the main job on built-in defaults: two nvmig hosts (each an NVMe subsystem with a PF
 * and 4 VFs over a shared namespace), VF1 brought online on each by Virtualization Management from its
 * PF, each host's controlling-function agent serving gRPC on a UNIX socket, a VM running a verified
 * mixed workload on host A's VF1; a live migration to host B out of band (the orchestrator drives the
 * two agents), then back to host A in band (VFIO v2 portals → NVMe variant drivers), while the workload
 * keeps running; finally every block ever acknowledged is re-read and checked. Prints a summary (or
 * one JSON object with `--json`).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { DemoOptions, EntryExit } from "../cli/types.ts";
import { renderHtmlReport } from "../migration/html-report.ts";
import { TwoHosts } from "../migration/in-process/two-hosts.ts";
import { TwoHostAgents } from "../migration/out-of-band/agents.ts";
import type { MigrationReport } from "../migration/report.ts";
import { Workload } from "../vmm/workload.ts";

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runDemoScenario(
  o: { runMs?: number; log?: (line: string) => void; reportDir?: string } = {},
): Promise<DemoResult> {
  const log = o.log ?? (() => {});
  const runMs = o.runMs ?? 1000;
  log(
    "starting host A and host B (PF + 4 VFs each, shared namespace 64 MiB), VF1 online on both, agents on gRPC",
  );
  const t = await TwoHosts.start({
    storage: "shared",
    namespaceBytes: 64 << 20,
    vmRamBytes: 64 << 20,
    ioQueuePairs: 4,
  });
  const agents = await TwoHostAgents.start(t);
  try {
    log(
      `VM on host A VF1: ${t.vm.driver.ioQueueCount} I/O queue pairs, verified random 4 KiB I/O, 50% writes, QD16 × 4`,
    );
    const w = new Workload(t.vm.driver, t.vm.memory, {
      pattern: "random",
      readPercent: 50,
      blockBytes: 4096,
      queueDepth: 16,
      queues: 4,
      seed: 2026,
    });
    const running = w.start();
    await sleep(runMs);
    const reports: { r: MigrationReport; from: string; to: string }[] = [];
    for (const [from, to, path] of [
      ["host-a", "host-b", "out-of-band"],
      ["host-b", "host-a", "in-band"],
    ] as const) {
      log(
        path === "out-of-band"
          ? `migrating VF1 ${from} → ${to} out of band (orchestrator → gRPC agents → TP4159 on each PF admin queue)`
          : `migrating VF1 ${from} → ${to} in band (VFIO v2 portals → NVMe variant drivers → TP4159 on each PF admin queue)`,
      );
      const r =
        path === "out-of-band"
          ? await agents.migrate({ maxDowntimeMs: 300 })
          : await t.migrate({ maxDowntimeMs: 300 });
      reports.push({ r, from, to });
      if (r.result !== "completed")
        throw new Error(`migration ${from} → ${to} rolled back: ${r.error?.message}`);
      log(
        `  done: downtime ${r.downtimeMs.toFixed(2)} ms (device ${r.deviceDowntimeMs.toFixed(2)} ms), ` +
          `${r.precopyIterations} pre-copy iterations, ${(r.bytesTransferred / 2 ** 20).toFixed(1)} MiB moved, state ${r.stateBytes} B`,
      );
      await sleep(runMs);
    }
    await w.stop();
    const stats = await running;
    log("workload stopped; re-reading every acknowledged block");
    const v = await w.verify();
    const first = reports[0]!.r;
    let reportPath: string | undefined;
    if (o.reportDir !== undefined) {
      mkdirSync(o.reportDir, { recursive: true });
      reportPath = join(o.reportDir, "nvmig-demo-report.html");
      writeFileSync(
        reportPath,
        renderHtmlReport(
          "nvmig demo — live migration of an NVMe VF",
          reports.map((x) => x.r),
          { verified: v.verified, ops: v.ops, lostWrites: v.lostWrites, badReads: v.badReads },
        ),
      );
      log(`HTML report: ${reportPath}`);
    }
    return {
      ...(reportPath !== undefined ? { reportPath } : {}),
      verified: v.verified,
      ops: v.ops,
      lostWrites: v.lostWrites,
      badReads: v.badReads,
      duplicateCompletions: v.duplicateCompletions,
      missingCompletions: v.missingCompletions,
      iops: Math.round(stats.iops),
      migration: {
        downtimeMs: first.downtimeMs,
        deviceDowntimeMs: first.deviceDowntimeMs,
        stateBytes: first.stateBytes,
        precopyIterations: first.precopyIterations,
        bytesTransferred: first.bytesTransferred,
      },
      migrations: reports.map(({ r, from, to }) => ({
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
  } finally {
    await agents.stop();
    await t.stop();
  }
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
