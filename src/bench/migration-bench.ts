/**
 * `nvmig bench migration`: downtime and state size of in-band live migration of one VF under load.
 *
 * Setup (all in this process, one JavaScript thread):
 *
 *   TwoHosts (host A, host B: subsystem + PF host driver each; VF 1 with n I/O queue pairs, a VFIO v2
 *   portal backed by the NVMe variant driver) ── one in-process VM on VF 1 of host A
 *     └─ Workload: 4 KiB random I/O, QD `queueDepth` on every one of the n queues (verifier on or off)
 *
 * One such rig per queue-pair count n (the result's keys "1", "4", "16", "64"), all VMs running from
 * the start. In rounds, each rig in turn: the load runs `loadMs`, then the orchestrator migrates the
 * VF and the VM's RAM to the other host (A → B, next round B → A); `warmupMigrations` rounds first,
 * unmeasured, then `migrationsPerKey` measured ones — so a change of load on the machine weighs on
 * every count alike. Every migration runs under load. Each report gives the device downtime (source
 * suspended → destination resumed), the downtime (vCPUs stopped → vCPUs running there), the parts of
 * the downtime and the controller state size. Nothing else runs inside a downtime window: the
 * migration's steps take no turn of the event loop, so the other VMs wait.
 *
 * `localStorage` is one migration with storage "local": the namespace data moves too (pre-copy of the
 * whole namespace, then the ranges the workload changed, tracked with the UDMQ).
 *
 * Where the time goes is in `downtimeBreakdownMsP50` (medians of the report's `downtime` parts):
 * `deviceStopMs` = Suspend + Get Controller State on the source PF; `deviceDataMs` = the rest of the
 * device stream; `finalRamMs` = the last dirty RAM (CPU log + device DMA log through Track Receive);
 * `deviceResumeMs` = Set Controller State (validate + apply) + Resume on the destination PF — and in
 * `deviceDowntimeBreakdownMsP50` (the device downtime alone) and a note per count.
 */
import { cpus } from "node:os";
import { TwoHosts } from "../migration/in-process/two-hosts.ts";
import type { DowntimeBreakdown, MigrationReport } from "../migration/report.ts";
import { Workload } from "../vmm/workload.ts";

export interface MigrationBenchOptions {
  /** I/O queue-pair counts, one result key each. Default [1, 4, 16, 64], each 1..64. */
  queuePairCounts?: readonly number[];
  /** Migrations measured per queue-pair count (alternating A → B, B → A). Default 7, range 1..1000. */
  migrationsPerKey?: number;
  /**
   * Migrations run before the measured ones of each queue-pair count and not counted (JIT warm-up:
   * the first migrations of a process run unoptimized code). Default 2, range 0..100.
   */
  warmupMigrations?: number;
  /** Commands outstanding per I/O queue. Default 32, range 1..127. */
  queueDepth?: number;
  /** Bytes per command. Default 4096. */
  blockBytes?: number;
  /** Share of reads, percent. Default 50, range 0..100. */
  readPercent?: number;
  /** Run the workload verifier (and a read-back check after the runs). Default true. */
  verify?: boolean;
  /** Load before each migration, ms. Default 20, range ≥ 0. */
  loadMs?: number;
  /** Downtime limit given to the orchestrator, ms. Default 300 (QEMU's default). */
  maxDowntimeMs?: number;
  /** VM RAM, bytes. Default 32 MiB. */
  vmRamBytes?: number;
  /** Namespace of the shared-storage runs, bytes. Default 64 MiB. */
  namespaceBytes?: number;
  /** Bytes of the namespace the workload addresses (from LBA 0). Default 8 MiB. */
  workingSetBytes?: number;
  /**
   * The local-storage run: namespace size and working set, bytes (defaults 16 MiB and 1 MiB), or
   * false to skip it.
   */
  localStorage?: { namespaceBytes?: number; workingSetBytes?: number } | false;
  /** Migration profile on the PFs. Default "tp4159". */
  profile?: "tp4159" | "intel";
  /** Called after each migration (progress). */
  onMigration?: (key: string, index: number, report: MigrationReport) => void;
}

/** Figures keyed by I/O queue-pair count ("1", "4", …). */
export type ByQueuePairs<T> = Record<string, T>;

export interface LocalStorageFigures {
  /** Namespace size, bytes. */
  namespaceBytes: number;
  /** Namespace bytes moved by the migration: the initial copy and every changed range, in pre-copy and stop-copy. */
  bytesCopied: number;
  /** Pre-copy iterations. */
  iterations: number;
  /** I/O queue pairs of the VF in this run. */
  ioQueuePairs: number;
  workingSetBytes: number;
  converged: boolean;
  totalMs: number;
  downtimeMs: number;
  deviceDowntimeMs: number;
  /** Device stream bytes sent in stop-copy: the namespace ranges changed since pre-copy + the controller state. */
  stopCopyBytes: number;
  downtime: DowntimeBreakdown;
}

export interface MigrationBenchResult {
  /** Device downtime (source suspended → destination resumed), median over the migrations, ms. */
  deviceDowntimeMsP50: ByQueuePairs<number>;
  deviceDowntimeMsP90: ByQueuePairs<number>;
  deviceDowntimeMsMax: ByQueuePairs<number>;
  /** Downtime (vCPUs stopped → vCPUs running on the destination), ms. */
  downtimeMsP50: ByQueuePairs<number>;
  downtimeMsP90: ByQueuePairs<number>;
  downtimeMsMax: ByQueuePairs<number>;
  /**
   * Device stream bytes of stop-copy (shared storage: the controller state record — TP4159 Controller
   * State blob — plus the stream's END record), median.
   */
  stateBytes: ByQueuePairs<number>;
  /** Migrations measured per key. */
  samples: ByQueuePairs<number>;
  /** Median of each part of the downtime (the report's `downtime`), ms. */
  downtimeBreakdownMsP50: ByQueuePairs<DowntimeBreakdown>;
  /**
   * The device downtime in parts, medians, ms: `deviceStopMs` and `deviceDataMs` and `deviceResumeMs`
   * as in the report, and `lastRamMs` = the rest (device downtime − those three: the device's last
   * dirty pages after its suspend, and the orchestrator between steps).
   */
  deviceDowntimeBreakdownMsP50: ByQueuePairs<{
    deviceStopMs: number;
    deviceDataMs: number;
    lastRamMs: number;
    deviceResumeMs: number;
  }>;
  /** deviceDowntimeMsP50 at the largest count ÷ at the smallest. */
  deviceDowntimeGrowth: { fromKey: string; toKey: string; ratio: number };
  localStorage?: LocalStorageFigures;
  /** The targets and whether this run meets them (undefined: key not measured). */
  targets: {
    deviceDowntimeMsP50At4QpMax: number;
    growth1To64Max: number;
    stateBytesAt64QpMax: number;
    met: { deviceDowntimeAt4Qp?: boolean; growth1To64?: boolean; stateBytesAt64Qp?: boolean };
  };
  /** Reference figures: QEMU's multifd VFIO device transfer for one VF and its default limit. */
  anchors: { qemuMultifdVfioDowntimeMs: [number, number]; qemuDefaultDowntimeLimitMs: number };
  /** Verifier outcome over all runs (undefined when verification is off). */
  verified?: boolean;
  workload: {
    pattern: "random";
    blockBytes: number;
    readPercent: number;
    queueDepthPerQueue: number;
    verify: boolean;
    loadMs: number;
    workingSetBytes: number;
  };
  config: {
    migrationsPerKey: number;
    warmupMigrations: number;
    maxDowntimeMs: number;
    vmRamBytes: number;
    namespaceBytes: number;
    profile: "tp4159" | "intel";
  };
  elapsedMs: number;
  environment: { node: string; platform: string; cpu: string; cpus: number };
  notes: string[];
}

const MiB = 2 ** 20;
const LBA_BYTES = 512;
const BREAKDOWN_KEYS = [
  "vcpuPauseMs",
  "deviceStopMs",
  "deviceDataMs",
  "finalRamMs",
  "deviceResumeMs",
  "vcpuStartMs",
] as const satisfies readonly (keyof DowntimeBreakdown)[];

/** One note per queue-pair count: the device downtime's median parts. */
function whereTheTimeGoes(
  parts: MigrationBenchResult["deviceDowntimeBreakdownMsP50"],
  device: ByQueuePairs<number>,
  all: ByQueuePairs<number>,
): string[] {
  return Object.entries(parts).map(
    ([key, p]) =>
      `Where the time goes at ${key} queue pair(s), medians: device downtime ${device[key]} ms = suspend + ` +
      `Get Controller State ${p.deviceStopMs} + state to the destination ${p.deviceDataMs} + the device's last ` +
      `pages and orchestration ${p.lastRamMs} + Set Controller State + Resume ${p.deviceResumeMs}; the vCPU ` +
      `downtime (${all[key]} ms) adds the RAM dirtied before the pause.`,
  );
}

/** Nearest-rank percentile of `xs` (not empty). */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface RigOptions {
  storage: "shared" | "local";
  namespaceBytes: number;
  workingSetBytes: number;
  vmRamBytes: number;
  queueDepth: number;
  blockBytes: number;
  readPercent: number;
  verify: boolean;
  maxDowntimeMs: number;
  profile: "tp4159" | "intel";
}

/** Two hosts and a VM under load, migrated back and forth. */
interface Rig {
  readonly ioQueuePairs: number;
  readonly t: TwoHosts;
  readonly w: Workload;
  readonly running: Promise<unknown>;
  readonly reports: MigrationReport[];
  /** Namespace bytes each measured migration's source put in its stream (pre-copy and stop-copy). */
  readonly namespaceBytesSent: number[];
}

async function startRig(ioQueuePairs: number, o: RigOptions): Promise<Rig> {
  const t = await TwoHosts.start({
    storage: o.storage,
    profile: o.profile,
    namespaceBytes: o.namespaceBytes,
    vmRamBytes: o.vmRamBytes,
    ioQueuePairs,
    driver: { ioQueueEntries: Math.max(64, 2 * o.queueDepth) },
  });
  const w = new Workload(t.vm.driver, t.vm.memory, {
    pattern: "random",
    readPercent: o.readPercent,
    blockBytes: o.blockBytes,
    queueDepth: o.queueDepth,
    queues: ioQueuePairs,
    lbaRange: [0, o.workingSetBytes / LBA_BYTES],
    seed: 0x6d16 + ioQueuePairs,
    verify: o.verify,
  });
  return { ioQueuePairs, t, w, running: w.start(), reports: [], namespaceBytesSent: [] };
}

/** One migration of `rig` (to the other host); kept unless it is a warm-up one (`index` < 0). */
async function migrateOnce(rig: Rig, index: number, maxDowntimeMs: number): Promise<MigrationReport> {
  const source = rig.t.source;
  const r = await rig.t.migrate({ maxDowntimeMs });
  if (r.result !== "completed")
    throw new Error(
      `migration ${index} (${rig.ioQueuePairs} queue pairs) rolled back: ${JSON.stringify(r.error)}`,
    );
  if (index >= 0) {
    rig.reports.push(r);
    rig.namespaceBytesSent.push(source.variant.lastSaving()?.namespaceBytesSent ?? 0);
  }
  return r;
}

/** Stops the load, verifies it (when on: true only with zero loss) and stops the hosts. */
async function finishRig(rig: Rig, verify: boolean): Promise<boolean | undefined> {
  try {
    await rig.w.stop();
    await rig.running;
    let verified: boolean | undefined;
    if (verify) {
      const v = await rig.w.verify();
      verified = v.verified && v.lostWrites === 0 && v.badReads === 0 && v.duplicateCompletions === 0;
    }
    rig.w.release();
    return verified;
  } finally {
    await rig.t.stop();
  }
}

/** Runs the migration benchmark (see the module comment). */
export async function runMigrationBench(opts: MigrationBenchOptions = {}): Promise<MigrationBenchResult> {
  const started = performance.now();
  const counts = opts.queuePairCounts ?? [1, 4, 16, 64];
  const migrations = opts.migrationsPerKey ?? 7;
  const warmup = opts.warmupMigrations ?? 2;
  const queueDepth = opts.queueDepth ?? 32;
  const blockBytes = opts.blockBytes ?? 4096;
  const readPercent = opts.readPercent ?? 50;
  const verify = opts.verify ?? true;
  const loadMs = opts.loadMs ?? 20;
  const maxDowntimeMs = opts.maxDowntimeMs ?? 300;
  const vmRamBytes = opts.vmRamBytes ?? 32 * MiB;
  const namespaceBytes = opts.namespaceBytes ?? 64 * MiB;
  const workingSetBytes = opts.workingSetBytes ?? 8 * MiB;
  const profile = opts.profile ?? "tp4159";
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 64))
    throw new RangeError(`queuePairCounts ${JSON.stringify(counts)}: integers 1..64`);
  if (!Number.isInteger(migrations) || migrations < 1 || migrations > 1000)
    throw new RangeError(`migrationsPerKey ${migrations}: 1..1000`);
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > 100)
    throw new RangeError(`warmupMigrations ${warmup}: 0..100`);
  if (!Number.isInteger(queueDepth) || queueDepth < 1 || queueDepth > 127)
    throw new RangeError(`queueDepth ${queueDepth}: 1..127`);
  if (!(loadMs >= 0)) throw new RangeError(`loadMs ${loadMs} < 0`);
  if (workingSetBytes > namespaceBytes || workingSetBytes % blockBytes !== 0)
    throw new RangeError(`workingSetBytes ${workingSetBytes}: a multiple of blockBytes within the namespace`);

  const common = { vmRamBytes, queueDepth, blockBytes, readPercent, verify, maxDowntimeMs, profile };
  const result: Pick<
    MigrationBenchResult,
    | "deviceDowntimeMsP50"
    | "deviceDowntimeMsP90"
    | "deviceDowntimeMsMax"
    | "downtimeMsP50"
    | "downtimeMsP90"
    | "downtimeMsMax"
    | "stateBytes"
    | "samples"
    | "downtimeBreakdownMsP50"
    | "deviceDowntimeBreakdownMsP50"
  > = {
    deviceDowntimeMsP50: {},
    deviceDowntimeMsP90: {},
    deviceDowntimeMsMax: {},
    downtimeMsP50: {},
    downtimeMsP90: {},
    downtimeMsMax: {},
    stateBytes: {},
    samples: {},
    downtimeBreakdownMsP50: {},
    deviceDowntimeBreakdownMsP50: {},
  };
  let verified: boolean | undefined = verify ? true : undefined;
  const rigOptions: RigOptions = { ...common, storage: "shared", namespaceBytes, workingSetBytes };
  // Every count's VM runs from the start; the counts take turns, one migration each per round, so a
  // change of load on the machine weighs on every count alike.
  const rigs: Rig[] = [];
  try {
    for (const n of counts) rigs.push(await startRig(n, rigOptions));
    for (let i = -warmup; i < migrations; i++) {
      for (const rig of rigs) {
        await sleep(loadMs);
        const r = await migrateOnce(rig, i, maxDowntimeMs);
        if (i >= 0) opts.onMigration?.(String(rig.ioQueuePairs), i, r);
      }
    }
    await sleep(loadMs);
  } finally {
    for (const rig of rigs) {
      const v = await finishRig(rig, verify);
      if (v === false) verified = false;
    }
  }
  for (const out of rigs) {
    const key = String(out.ioQueuePairs);
    const rs = out.reports;
    const dev = rs.map((r) => r.deviceDowntimeMs);
    const all = rs.map((r) => r.downtimeMs);
    result.deviceDowntimeMsP50[key] = round3(percentile(dev, 50));
    result.deviceDowntimeMsP90[key] = round3(percentile(dev, 90));
    result.deviceDowntimeMsMax[key] = round3(Math.max(...dev));
    result.downtimeMsP50[key] = round3(percentile(all, 50));
    result.downtimeMsP90[key] = round3(percentile(all, 90));
    result.downtimeMsMax[key] = round3(Math.max(...all));
    result.stateBytes[key] = percentile(
      rs.map((r) => r.stateBytes),
      50,
    );
    result.samples[key] = rs.length;
    const parts = {} as DowntimeBreakdown;
    for (const k of BREAKDOWN_KEYS)
      parts[k] = round3(
        percentile(
          rs.map((r) => r.downtime[k]),
          50,
        ),
      );
    result.downtimeBreakdownMsP50[key] = parts;
    const lastRam = rs.map(
      (r) =>
        r.deviceDowntimeMs - r.downtime.deviceStopMs - r.downtime.deviceDataMs - r.downtime.deviceResumeMs,
    );
    result.deviceDowntimeBreakdownMsP50[key] = {
      deviceStopMs: parts.deviceStopMs,
      deviceDataMs: parts.deviceDataMs,
      lastRamMs: round3(Math.max(0, percentile(lastRam, 50))),
      deviceResumeMs: parts.deviceResumeMs,
    };
  }

  let localStorage: LocalStorageFigures | undefined;
  if (opts.localStorage !== false) {
    const nsBytes = opts.localStorage?.namespaceBytes ?? 16 * MiB;
    const ws = opts.localStorage?.workingSetBytes ?? MiB;
    const ioQueuePairs = counts.includes(4) ? 4 : counts[0]!;
    const out = await startRig(ioQueuePairs, {
      ...common,
      storage: "local",
      namespaceBytes: nsBytes,
      workingSetBytes: ws,
    });
    try {
      await sleep(loadMs);
      await migrateOnce(out, 0, maxDowntimeMs);
      await sleep(loadMs);
    } finally {
      if ((await finishRig(out, verify)) === false) verified = false;
    }
    const r = out.reports[0]!;
    localStorage = {
      namespaceBytes: nsBytes,
      bytesCopied: out.namespaceBytesSent[0]!,
      iterations: r.precopyIterations,
      ioQueuePairs,
      workingSetBytes: ws,
      converged: r.converged,
      totalMs: r.totalMs,
      downtimeMs: r.downtimeMs,
      deviceDowntimeMs: r.deviceDowntimeMs,
      stopCopyBytes: r.stateBytes,
      downtime: r.downtime,
    };
  }

  const sorted = [...counts].sort((a, b) => a - b);
  const fromKey = String(sorted[0]);
  const toKey = String(sorted[sorted.length - 1]);
  const p50 = result.deviceDowntimeMsP50;
  const ratio = p50[fromKey]! > 0 ? round3(p50[toKey]! / p50[fromKey]!) : 0;
  const targets: MigrationBenchResult["targets"] = {
    deviceDowntimeMsP50At4QpMax: 5,
    growth1To64Max: 2,
    stateBytesAt64QpMax: 16 * 1024,
    met: {},
  };
  if (p50["4"] !== undefined) targets.met.deviceDowntimeAt4Qp = p50["4"] <= 5;
  if (p50["1"] !== undefined && p50["64"] !== undefined) targets.met.growth1To64 = p50["64"] <= 2 * p50["1"];
  if (result.stateBytes["64"] !== undefined)
    targets.met.stateBytesAt64Qp = result.stateBytes["64"] <= 16 * 1024;

  const cpuList = cpus();
  return {
    ...result,
    deviceDowntimeGrowth: { fromKey, toKey, ratio },
    ...(localStorage !== undefined ? { localStorage } : {}),
    targets,
    anchors: { qemuMultifdVfioDowntimeMs: [366, 487], qemuDefaultDowntimeLimitMs: 300 },
    ...(verified !== undefined ? { verified } : {}),
    workload: {
      pattern: "random",
      blockBytes,
      readPercent,
      queueDepthPerQueue: queueDepth,
      verify,
      loadMs,
      workingSetBytes,
    },
    config: {
      migrationsPerKey: migrations,
      warmupMigrations: warmup,
      maxDowntimeMs,
      vmRamBytes,
      namespaceBytes,
      profile,
    },
    elapsedMs: round3(performance.now() - started),
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpu: cpuList[0]?.model ?? "unknown",
      cpus: cpuList.length,
    },
    notes: [
      "In-band path: VFIO v2 portal → NVMe variant driver → TP4159 admin commands on each host's PF admin queue; " +
        "both hosts, the VM and the workload share one JavaScript thread.",
      `One rig (two hosts + a VM under load) per queue-pair count, all running; in rounds each rig migrates once: ` +
        `${warmup} unmeasured warm-up round(s) (JIT), then ${migrations} measured ones.`,
      `Every migration runs under load: 4 KiB random I/O, ${readPercent}% reads, QD${queueDepth} on every I/O queue pair.`,
      "deviceDowntimeMs = source Suspend → destination Resume done; downtimeMs = vCPUs paused → vCPUs running on the destination.",
      "downtimeBreakdownMsP50: deviceStopMs = Suspend + Get Controller State on the source PF; deviceDataMs = the " +
        "rest of the device stream (state record + END, CRC-checked on arrival); finalRamMs = the RAM found dirty " +
        "once the vCPUs stopped (CPU log ∪ device DMA log via Track Receive; sent while the device still runs) plus " +
        "the device's last pages after its suspend; deviceResumeMs = Set Controller State (validate + apply) + " +
        "Resume on the destination PF; vcpuPauseMs / vcpuStartMs = stopping and starting the in-process vCPUs.",
      ...whereTheTimeGoes(
        result.deviceDowntimeBreakdownMsP50,
        result.deviceDowntimeMsP50,
        result.downtimeMsP50,
      ),
      "Anchors: QEMU's multifd VFIO device state transfer for one VF measured 366–487 ms of downtime; QEMU's default " +
        "downtime limit is 300 ms.",
    ],
  };
}
