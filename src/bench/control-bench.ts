/**
 * `nvmig bench control`: the two control paths side by side, and many functions migrating at once.
 *
 * Paths (one `TwoHosts` testbed, all in this process, one JavaScript thread):
 *
 *   host A, host B (subsystem + PF host driver each; VF 1 with `ioQueuePairs` I/O queue pairs)
 *   one in-process VM on VF 1 under a verified workload (4 KiB random I/O, QD `queueDepth` per queue)
 *   "in-band":     orchestrator → VFIO v2 portal → NVMe variant driver → PF admin queue
 *   "out-of-band": orchestrator → local portal → gRPC (UNIX socket) → host agent → PF admin queue
 *
 * The migrations alternate path and direction: in band A → B, out of band B → A, in band A → B, …
 * (`migrationsPerPath` of each), every one under load, with `loadMs` of load between them; the one
 * workload is verified at the end.
 *
 * Concurrent (in band; a `ManyVms` testbed per count k): both hosts have `concurrent.onlineVfs` VFs
 * online; VMs 1..k each run a light verified workload on VF i (its own LBA range of a shared
 * namespace); then all k are migrated at once (`Promise.all` of the orchestrator), `concurrent.rounds`
 * times (A → B, B → A, …). Per k: the wall time of a round, the worst and median downtimes, and whether
 * every workload verified. All k migrations share each host's one PF admin queue and the one thread.
 */
import { cpus } from "node:os";
import { ManyVms } from "../migration/in-process/many-vms.ts";
import { TwoHosts } from "../migration/in-process/two-hosts.ts";
import { TwoHostAgents } from "../migration/out-of-band/agents.ts";
import type { DowntimeBreakdown, MigrationReport } from "../migration/report.ts";
import type { VerifyReport } from "../vmm/verifier.ts";
import { Workload } from "../vmm/workload.ts";

export type ControlPath = "in-band" | "out-of-band";

export interface ControlBenchOptions {
  /** Migrations per path (alternating paths and directions). Default 7, range 1..1000. */
  migrationsPerPath?: number;
  /** I/O queue pairs of the VF in the path runs. Default 4, range 1..64. */
  ioQueuePairs?: number;
  /** Commands outstanding per I/O queue in the path runs. Default 32, range 1..127. */
  queueDepth?: number;
  /** Load before each migration, ms. Default 20, range ≥ 0. */
  loadMs?: number;
  /** Downtime limit given to the orchestrator, ms. Default 300 (QEMU's default). */
  maxDowntimeMs?: number;
  /** VM RAM in the path runs, bytes. Default 32 MiB. */
  vmRamBytes?: number;
  /** Namespace of the path runs, bytes. Default 64 MiB. */
  namespaceBytes?: number;
  /** Bytes of the namespace the path-run workload addresses (from LBA 0). Default 8 MiB. */
  workingSetBytes?: number;
  /** The concurrent runs, or false to skip them. */
  concurrent?: ConcurrentOptions | false;
  /** Called after each migration (progress). */
  onMigration?: (label: string, report: MigrationReport) => void;
}

export interface ConcurrentOptions {
  /** Functions migrating at once, one result key each. Default [1, 4, 16], each 1..127. */
  counts?: readonly number[];
  /** Rounds of "all k at once" per count (alternating direction). Default 3, range 1..100. */
  rounds?: number;
  /** VFs online on each host. Default max(16, largest count), range largest count..127. */
  onlineVfs?: number;
  /** RAM of each VM, bytes. Default 4 MiB. */
  vmRamBytes?: number;
  /** I/O queue pairs of each VF. Default 2, range 1..8. */
  ioQueuePairs?: number;
  /** Commands outstanding per I/O queue of each VM's workload. Default 4, range 1..127. */
  queueDepth?: number;
  /** Shared namespace, bytes (split into one LBA range per VM). Default 64 MiB. */
  namespaceBytes?: number;
  /** Load before each round, ms. Default 20, range ≥ 0. */
  loadMs?: number;
}

export interface ConcurrentFigures {
  /** Functions migrated at once. */
  functions: number;
  /** Wall time from starting all k migrations to the last one done (source cleanup included), median over rounds, ms. */
  totalMs: number;
  /** Worst round wall time, ms. */
  totalMsMax: number;
  /** Worst vCPU downtime over all k × rounds migrations, ms. */
  worstDowntimeMs: number;
  /** Worst device downtime (source suspended → destination resumed), ms. */
  worstDeviceDowntimeMs: number;
  /** Median vCPU downtime, ms. */
  p50DowntimeMs: number;
  /** Median device downtime, ms. */
  p50DeviceDowntimeMs: number;
  /** Median of each migration's own time (orchestrator start → done), ms. */
  p50MigrationMs: number;
  /**
   * Commands the two PFs completed per migration (both hosts; storage is shared, so these are the
   * admin commands: TP4159 migration and tracking commands plus the source's re-bring-up), all through
   * each host's one admin queue.
   */
  pfCommandsPerMigration: number;
  /** Migrations measured (k × rounds). */
  samples: number;
  /** Every VM's workload verified: no lost write, bad read, duplicate or missing completion. */
  verified: boolean;
}

export interface ControlBenchResult {
  /** vCPU downtime (vCPUs stopped → running on the destination), median per path, ms. */
  downtimeMsP50: Record<ControlPath, number>;
  downtimeMsP90: Record<ControlPath, number>;
  /** Device downtime (source suspended → destination resumed), median per path, ms. */
  deviceDowntimeMsP50: Record<ControlPath, number>;
  deviceDowntimeMsP90: Record<ControlPath, number>;
  /** Whole migration (orchestrator start → done), median per path, ms. */
  totalMsP50: Record<ControlPath, number>;
  /** Median of each part of the downtime, per path, ms. */
  downtimeBreakdownMsP50: Record<ControlPath, DowntimeBreakdown>;
  /** Controller state bytes, median per path. */
  stateBytes: Record<ControlPath, number>;
  samples: Record<ControlPath, number>;
  /** Keyed by functions migrating at once ("1", "4", "16"). Absent when skipped. */
  concurrent?: Record<string, ConcurrentFigures>;
  /** Every workload (path runs and concurrent runs) verified. */
  verified: boolean;
  workload: {
    paths: {
      blockBytes: number;
      readPercent: number;
      queueDepthPerQueue: number;
      ioQueuePairs: number;
      loadMs: number;
    };
    concurrent?: {
      blockBytes: number;
      readPercent: number;
      queueDepthPerQueue: number;
      ioQueuePairs: number;
      loadMs: number;
    };
  };
  config: {
    migrationsPerPath: number;
    maxDowntimeMs: number;
    vmRamBytes: number;
    namespaceBytes: number;
    workingSetBytes: number;
    concurrent?: { rounds: number; onlineVfs: number; vmRamBytes: number; namespaceBytes: number };
  };
  elapsedMs: number;
  environment: { node: string; platform: string; cpu: string; cpus: number };
  notes: string[];
}

const MiB = 2 ** 20;
const LBA_BYTES = 512;
const BLOCK_BYTES = 4096;
const READ_PERCENT = 50;
const PATHS = ["in-band", "out-of-band"] as const satisfies readonly ControlPath[];
const BREAKDOWN_KEYS = [
  "vcpuPauseMs",
  "deviceStopMs",
  "deviceDataMs",
  "finalRamMs",
  "deviceResumeMs",
  "vcpuStartMs",
] as const satisfies readonly (keyof DowntimeBreakdown)[];

/** Nearest-rank percentile of `xs` (not empty). */
function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function clean(v: VerifyReport): boolean {
  return (
    v.verified &&
    v.writes > 0 &&
    v.lostWrites === 0 &&
    v.badReads === 0 &&
    v.duplicateCompletions === 0 &&
    v.missingCompletions === 0
  );
}

function completed(label: string, r: MigrationReport): MigrationReport {
  if (r.result !== "completed") throw new Error(`${label} rolled back: ${JSON.stringify(r.error)}`);
  return r;
}

function int(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name} ${v}: ${lo}..${hi}`);
}

async function runPaths(o: {
  migrations: number;
  ioQueuePairs: number;
  queueDepth: number;
  loadMs: number;
  maxDowntimeMs: number;
  vmRamBytes: number;
  namespaceBytes: number;
  workingSetBytes: number;
  onMigration: ((label: string, r: MigrationReport) => void) | undefined;
}): Promise<{ reports: Record<ControlPath, MigrationReport[]>; verified: boolean }> {
  const t = await TwoHosts.start({
    storage: "shared",
    namespaceBytes: o.namespaceBytes,
    vmRamBytes: o.vmRamBytes,
    ioQueuePairs: o.ioQueuePairs,
    driver: { ioQueueEntries: Math.max(64, 2 * o.queueDepth) },
  });
  let agents: TwoHostAgents | undefined;
  try {
    agents = await TwoHostAgents.start(t);
    const w = new Workload(t.vm.driver, t.vm.memory, {
      pattern: "random",
      readPercent: READ_PERCENT,
      blockBytes: BLOCK_BYTES,
      queueDepth: o.queueDepth,
      queues: o.ioQueuePairs,
      lbaRange: [0, o.workingSetBytes / LBA_BYTES],
      seed: 0xc0de,
    });
    const running = w.start();
    const reports: Record<ControlPath, MigrationReport[]> = { "in-band": [], "out-of-band": [] };
    try {
      for (let i = 0; i < o.migrations; i++) {
        for (const path of PATHS) {
          await sleep(o.loadMs);
          const label = `${path} #${i} (${t.current} → ${t.current === "a" ? "b" : "a"})`;
          const opts = { maxDowntimeMs: o.maxDowntimeMs };
          const r = completed(label, path === "in-band" ? await t.migrate(opts) : await agents.migrate(opts));
          reports[path].push(r);
          o.onMigration?.(label, r);
        }
      }
      await sleep(o.loadMs);
    } finally {
      await w.stop();
      await running;
    }
    const verified = clean(await w.verify());
    w.release();
    return { reports, verified };
  } finally {
    await agents?.stop();
    await t.stop();
  }
}

async function runConcurrent(
  k: number,
  o: Required<Omit<ConcurrentOptions, "counts">> & {
    maxDowntimeMs: number;
    onMigration: ((label: string, r: MigrationReport) => void) | undefined;
  },
): Promise<ConcurrentFigures> {
  const t = await ManyVms.start({
    vms: k,
    secondaryCount: o.onlineVfs,
    onlineVfs: o.onlineVfs,
    namespaceBytes: o.namespaceBytes,
    vmRamBytes: o.vmRamBytes,
    ioQueuePairs: o.ioQueuePairs,
  });
  try {
    const ws = t.slots.map(
      (s, i) =>
        new Workload(s.vm.driver, s.vm.memory, {
          pattern: "random",
          readPercent: READ_PERCENT,
          blockBytes: BLOCK_BYTES,
          queueDepth: o.queueDepth,
          queues: o.ioQueuePairs,
          lbaRange: t.lbaRangeOf(i),
          seed: 0x5eed + 97 * k + i,
        }),
    );
    const running = ws.map((w) => w.start());
    const roundMs: number[] = [];
    const reports: MigrationReport[] = [];
    const pfCommands = () =>
      t.a.subsystem.pf.controller.completedCommands + t.b.subsystem.pf.controller.completedCommands;
    const pfCommandsBefore = pfCommands();
    let pfCommandsAfter = pfCommandsBefore;
    try {
      for (let round = 0; round < o.rounds; round++) {
        await sleep(o.loadMs);
        const t0 = performance.now();
        const rs = await t.migrateMany(undefined, { maxDowntimeMs: o.maxDowntimeMs });
        roundMs.push(performance.now() - t0);
        for (const [i, r] of rs.entries()) {
          const label = `concurrent k=${k} round ${round} vf${i + 1}`;
          reports.push(completed(label, r));
          o.onMigration?.(label, r);
        }
      }
      pfCommandsAfter = pfCommands();
      await sleep(o.loadMs);
    } finally {
      await Promise.all(ws.map((w) => w.stop()));
      await Promise.all(running);
    }
    let verified = true;
    for (const w of ws) {
      if (!clean(await w.verify())) verified = false;
      w.release();
    }
    const down = reports.map((r) => r.downtimeMs);
    const dev = reports.map((r) => r.deviceDowntimeMs);
    return {
      functions: k,
      totalMs: round3(pct(roundMs, 50)),
      totalMsMax: round3(Math.max(...roundMs)),
      worstDowntimeMs: round3(Math.max(...down)),
      worstDeviceDowntimeMs: round3(Math.max(...dev)),
      p50DowntimeMs: round3(pct(down, 50)),
      p50DeviceDowntimeMs: round3(pct(dev, 50)),
      p50MigrationMs: round3(
        pct(
          reports.map((r) => r.totalMs),
          50,
        ),
      ),
      pfCommandsPerMigration: round3((pfCommandsAfter - pfCommandsBefore) / reports.length),
      samples: reports.length,
      verified,
    };
  } finally {
    await t.stop();
  }
}

/** Runs the control-path benchmark (see the module comment). */
export async function runControlBench(opts: ControlBenchOptions = {}): Promise<ControlBenchResult> {
  const started = performance.now();
  const migrations = opts.migrationsPerPath ?? 7;
  const ioQueuePairs = opts.ioQueuePairs ?? 4;
  const queueDepth = opts.queueDepth ?? 32;
  const loadMs = opts.loadMs ?? 20;
  const maxDowntimeMs = opts.maxDowntimeMs ?? 300;
  const vmRamBytes = opts.vmRamBytes ?? 32 * MiB;
  const namespaceBytes = opts.namespaceBytes ?? 64 * MiB;
  const workingSetBytes = opts.workingSetBytes ?? 8 * MiB;
  int("migrationsPerPath", migrations, 1, 1000);
  int("ioQueuePairs", ioQueuePairs, 1, 64);
  int("queueDepth", queueDepth, 1, 127);
  if (!(loadMs >= 0)) throw new RangeError(`loadMs ${loadMs} < 0`);
  if (workingSetBytes > namespaceBytes || workingSetBytes % BLOCK_BYTES !== 0)
    throw new RangeError(`workingSetBytes ${workingSetBytes}: a multiple of 4096 within the namespace`);

  const c = opts.concurrent === false ? undefined : (opts.concurrent ?? {});
  const counts = c?.counts ?? [1, 4, 16];
  const cc =
    c === undefined
      ? undefined
      : {
          rounds: c.rounds ?? 3,
          onlineVfs: c.onlineVfs ?? Math.max(16, ...counts),
          vmRamBytes: c.vmRamBytes ?? 4 * MiB,
          ioQueuePairs: c.ioQueuePairs ?? 2,
          queueDepth: c.queueDepth ?? 4,
          namespaceBytes: c.namespaceBytes ?? 64 * MiB,
          loadMs: c.loadMs ?? 20,
        };
  if (cc !== undefined) {
    if (counts.length === 0) throw new RangeError("concurrent.counts is empty");
    for (const k of counts) int("concurrent count", k, 1, 127);
    int("concurrent.rounds", cc.rounds, 1, 100);
    int("concurrent.onlineVfs", cc.onlineVfs, Math.max(...counts), 127);
    int("concurrent.ioQueuePairs", cc.ioQueuePairs, 1, 8);
    int("concurrent.queueDepth", cc.queueDepth, 1, 127);
    if (!(cc.loadMs >= 0)) throw new RangeError(`concurrent.loadMs ${cc.loadMs} < 0`);
  }

  const paths = await runPaths({
    migrations,
    ioQueuePairs,
    queueDepth,
    loadMs,
    maxDowntimeMs,
    vmRamBytes,
    namespaceBytes,
    workingSetBytes,
    onMigration: opts.onMigration,
  });
  let verified = paths.verified;
  const per = <T>(f: (rs: MigrationReport[]) => T): Record<ControlPath, T> => ({
    "in-band": f(paths.reports["in-band"]),
    "out-of-band": f(paths.reports["out-of-band"]),
  });

  let concurrent: Record<string, ConcurrentFigures> | undefined;
  if (cc !== undefined) {
    concurrent = {};
    for (const k of counts) {
      const f = await runConcurrent(k, { ...cc, maxDowntimeMs, onMigration: opts.onMigration });
      if (!f.verified) verified = false;
      concurrent[String(k)] = f;
    }
  }

  const cpuList = cpus();
  return {
    downtimeMsP50: per((rs) =>
      round3(
        pct(
          rs.map((r) => r.downtimeMs),
          50,
        ),
      ),
    ),
    downtimeMsP90: per((rs) =>
      round3(
        pct(
          rs.map((r) => r.downtimeMs),
          90,
        ),
      ),
    ),
    deviceDowntimeMsP50: per((rs) =>
      round3(
        pct(
          rs.map((r) => r.deviceDowntimeMs),
          50,
        ),
      ),
    ),
    deviceDowntimeMsP90: per((rs) =>
      round3(
        pct(
          rs.map((r) => r.deviceDowntimeMs),
          90,
        ),
      ),
    ),
    totalMsP50: per((rs) =>
      round3(
        pct(
          rs.map((r) => r.totalMs),
          50,
        ),
      ),
    ),
    downtimeBreakdownMsP50: per((rs) => {
      const parts = {} as DowntimeBreakdown;
      for (const k of BREAKDOWN_KEYS)
        parts[k] = round3(
          pct(
            rs.map((r) => r.downtime[k]),
            50,
          ),
        );
      return parts;
    }),
    stateBytes: per((rs) =>
      pct(
        rs.map((r) => r.stateBytes),
        50,
      ),
    ),
    samples: per((rs) => rs.length),
    ...(concurrent !== undefined ? { concurrent } : {}),
    verified,
    workload: {
      paths: {
        blockBytes: BLOCK_BYTES,
        readPercent: READ_PERCENT,
        queueDepthPerQueue: queueDepth,
        ioQueuePairs,
        loadMs,
      },
      ...(cc !== undefined
        ? {
            concurrent: {
              blockBytes: BLOCK_BYTES,
              readPercent: READ_PERCENT,
              queueDepthPerQueue: cc.queueDepth,
              ioQueuePairs: cc.ioQueuePairs,
              loadMs: cc.loadMs,
            },
          }
        : {}),
    },
    config: {
      migrationsPerPath: migrations,
      maxDowntimeMs,
      vmRamBytes,
      namespaceBytes,
      workingSetBytes,
      ...(cc !== undefined
        ? {
            concurrent: {
              rounds: cc.rounds,
              onlineVfs: cc.onlineVfs,
              vmRamBytes: cc.vmRamBytes,
              namespaceBytes: cc.namespaceBytes,
            },
          }
        : {}),
    },
    elapsedMs: round3(performance.now() - started),
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpu: cpuList[0]?.model ?? "unknown",
      cpus: cpuList.length,
    },
    notes: [
      "in-band: orchestrator → VFIO v2 portal → NVMe variant driver → TP4159 admin commands on the PF admin queue. " +
        "out-of-band: orchestrator → local portal whose backend calls the host agent over gRPC (UNIX socket, same " +
        "process) → the same admin commands. Both hosts, the VMs, the agents and the workloads share one JavaScript thread.",
      "Path runs alternate in-band and out-of-band migrations (and direction) on one VM under one verified workload.",
      "downtimeMs = vCPUs paused → vCPUs running on the destination; deviceDowntimeMs = source Suspend → destination Resume done.",
      "concurrent: k VMs on VFs 1..k, all migrated at once in band; totalMs is the wall time of one round (median over " +
        "rounds) including each source function's reset and re-bring-up. All k migrations share each host's one PF admin " +
        "queue (the PF processes its admin commands one at a time) and the one thread, so their downtimes overlap and grow with k.",
    ],
  };
}
