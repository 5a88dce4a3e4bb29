/**
 * The main job as real processes: `nvmig host` A and B (child processes, shared namespace file, gRPC
 * agents on UNIX sockets), a VM process (`nvmig vm`) running the verified workload on A's VF1; an
 * out-of-band migration to B (a destination VMM process takes the guest over TCP), then an in-band one
 * back to A; finally the VM (now the second destination VMM) stops, re-reads every block it wrote and
 * reports. Everything talks over loopback and UNIX sockets; nothing is shared in memory.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrateBetweenHosts } from "../migration/cross-process/between-hosts.ts";
import type { MigrationReport } from "../migration/report.ts";
import { type HostHandle, startHost, startVm, stopVm, type VmHandle } from "./process-testbed.ts";

export interface ProcessDemoResult {
  verified: boolean;
  ops: number;
  lostWrites: number;
  badReads: number;
  duplicateCompletions: number;
  missingCompletions: number;
  reports: MigrationReport[];
  /** The VM's final result line. */
  vm: Record<string, unknown>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runProcessDemo(
  o: { runMs?: number; log?: (line: string) => void; keepDir?: boolean } = {},
): Promise<ProcessDemoResult> {
  const log = o.log ?? (() => {});
  const runMs = o.runMs ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), "nvmig-demo-"));
  const procs: (HostHandle | VmHandle)[] = [];
  try {
    log(
      "starting host A and host B as processes (nvmig host: PF + VF1 online, shared namespace file, agent on gRPC)",
    );
    const [a, b] = await Promise.all([
      startHost(dir, { name: "host-a", storage: "shared", namespaceBytes: 16 << 20 }),
      startHost(dir, { name: "host-b", storage: "shared", namespaceBytes: 16 << 20 }),
    ]);
    procs.push(a, b);
    log("starting the VM process on host A's VF1 (nvmig vm: 16 MiB RAM, 2 queues, verified mixed I/O)");
    const vm = await startVm(dir, { name: "vm1", attach: join(a.socketDir, "vf1.sock") });
    procs.push(vm);
    await sleep(runMs);
    log("migrating A → B out of band (gRPC agents; guest RAM VMM → VMM over TCP)");
    const first = await migrateBetweenHosts({
      from: a.config,
      to: b.config,
      functionId: "vf1",
      vmControl: vm.control,
      path: "out-of-band",
      destControl: join(dir, "vm1-on-b.control"),
    });
    log(
      `  ${first.report.result}: downtime ${first.report.downtimeMs} ms (device ${first.report.deviceDowntimeMs} ms)`,
    );
    if (first.report.result !== "completed")
      throw new Error(`A → B ${first.report.result}: ${first.report.error?.message}`);
    await sleep(runMs);
    log("migrating B → A in band (the VMMs' VFIO v2 portals over vfio-user)");
    const second = await migrateBetweenHosts({
      from: b.config,
      to: a.config,
      functionId: "vf1",
      vmControl: first.destination.control,
      path: "in-band",
      destControl: join(dir, "vm1-on-a.control"),
    });
    log(
      `  ${second.report.result}: downtime ${second.report.downtimeMs} ms (device ${second.report.deviceDowntimeMs} ms)`,
    );
    if (second.report.result !== "completed")
      throw new Error(`B → A ${second.report.result}: ${second.report.error?.message}`);
    await sleep(runMs);
    log("stopping the workload: drain, re-read every block written, verify");
    const r = await stopVm(second.destination.control, second.destination.out);
    return {
      verified: r.verified === true,
      ops: Number(r.ops),
      lostWrites: Number(r.lostWrites),
      badReads: Number(r.badReads),
      duplicateCompletions: Number(r.duplicateCompletions),
      missingCompletions: Number(r.missingCompletions),
      reports: [first.report, second.report],
      vm: r,
    };
  } finally {
    for (const p of procs) p.proc.kill("SIGTERM");
    await Promise.all(procs.map((p) => Promise.race([p.exited, sleep(5000)])));
    for (const p of procs) p.kill9();
    if (o.keepDir !== true) rmSync(dir, { recursive: true, force: true });
  }
}
