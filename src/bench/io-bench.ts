/**
 * `nvmig bench io`: I/O figures of the emulated NVMe function with the guest driver in process.
 *
 * Setup (all in this process, one JavaScript thread — so every figure is "one core"):
 *
 *   HostNode (subsystem: PF + secondaries, PF host driver) ── memory BlockStore (namespace 1)
 *     └─ VF n brought online by Virtualization Management (`bringUpVf(n, 4)`)
 *          └─ InProcessPort ── GuestNvmeDriver (interrupt or polling mode) ── Workload (verify off)
 *
 * One VF (and one in-process VM) per (queue pairs, completion mode) pair. A case warms up for
 * `warmupMs` with a throw-away workload, then measures for `durationMs`. The namespace's working set
 * (`workingSetBytes`) is written once before the cases, so reads copy real data rather than zeroes
 * and writes never allocate store chunks during a measurement.
 *
 * The queue depth of a case is the total across its queue pairs (QD128 on four queue pairs is 32
 * per queue), so the one- and four-queue-pair figures compare at the same number of commands in
 * flight. Workload verification is off for every speed figure (`verify: false` in the result).
 *
 * `memcpyGiBps` is a plain `Uint8Array.set` of the same block sizes (4 KiB and 128 KiB) from random
 * offsets of a working-set-sized source, measured in the same run: divide by it to compare results
 * across machines.
 *
 * `rssMiB64Vfs` is measured in a child process with a fresh heap (see `rss-child.ts`).
 */
import { spawn } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { HostNode } from "../host/host-node.ts";
import { createMemoryBlockStore, type MemoryBlockStore } from "../storage/memory-block-store.ts";
import { type InProcessVm, startInProcessVm } from "../vmm/in-process-vm.ts";
import { Workload, type WorkloadOptions } from "../vmm/workload.ts";
import type { RssChildReport } from "./rss-child.ts";

export interface IoBenchOptions {
  /** Measured time per case, ms. Default 2000, range ≥ 10. */
  durationMs?: number;
  /** Warm-up time per case before measuring (JIT, caches), ms. Default 250, range ≥ 0. */
  warmupMs?: number;
  /**
   * Bytes of namespace 1 written before the cases and addressed by them (random and sequential
   * alike). Default 8 MiB (8388608): it fits a server CPU's last-level cache, so the figures
   * measure the emulation path rather than DRAM; with a DRAM-sized working set 4 KiB reads are
   * bounded by `memcpy.block4kCopiesPerSecond`. A multiple of 128 KiB, at least 1 MiB.
   */
  workingSetBytes?: number;
  /** Which cases to run (all when absent); see `IO_BENCH_CASES` for the names. */
  cases?: readonly string[];
  /** Measure `rssMiB64Vfs` in a child process. Default true. */
  rss?: boolean;
  /** VFs online in the RSS measurement. Default 64, range 1..127. */
  rssVfs?: number;
  /** Called after each case (progress). */
  onCase?: (result: IoBenchCaseResult) => void;
}

/** One measured case. */
export interface IoBenchCaseResult {
  /** e.g. "randread-4k-qd128-1qp-interrupt". */
  name: string;
  pattern: "random" | "sequential";
  /** Share of reads, percent. */
  readPercent: number;
  blockBytes: number;
  queuePairs: number;
  /** Commands in flight, all queue pairs together. */
  queueDepth: number;
  queueDepthPerQueue: number;
  completionMode: "interrupt" | "polling";
  /** Always false: speed figures run without the workload verifier. */
  verify: false;
  /** Measured time, ms (first submission to last completion). */
  elapsedMs: number;
  ops: number;
  errors: number;
  iops: number;
  /**
   * Completed commands per second of this process's CPU time (user + system, all threads) during
   * the measurement: less sensitive than `iops` to other load on the machine.
   */
  iopsPerCpuSecond: number;
  /** Process CPU time during the measurement, ms. */
  cpuMs: number;
  /** Data moved per second, GiB/s (2^30 bytes). */
  gibPerSecond: number;
  latencyUs: { mean: number; p50: number; p99: number; max: number };
  /** MSI-X messages the guest received per completed command (interrupt mode). */
  interruptsPerOp: number;
  /** MMIO doorbell writes (SQ tail + CQ head) per completed command. */
  doorbellsPerOp: number;
}

export interface IoBenchResult {
  /** 4 KiB random read IOPS at queue depth 128 (best of the QD128 random-read cases). */
  randread4kQd128Iops: number;
  /** 4 KiB random write IOPS at queue depth 128 (best of its cases). */
  randwrite4kQd128Iops: number;
  /** 4 KiB random read IOPS at queue depth 1 (best of its cases). */
  randread4kQd1Iops: number;
  /** 128 KiB sequential read, GiB/s (best of its cases). */
  seqread128kGiBps: number;
  /** Plain memory copy of 128 KiB blocks, GiB/s, measured in the same run. */
  memcpyGiBps: number;
  /**
   * Resident memory (MiB) of a process holding a subsystem with the PF and `rssVfs` online VFs,
   * each with 4 I/O queue pairs created and idle; undefined when not measured.
   */
  rssMiB64Vfs?: number;
  /** The case each headline figure comes from. */
  headlineCases: Record<
    "randread4kQd128Iops" | "randwrite4kQd128Iops" | "randread4kQd1Iops" | "seqread128kGiBps",
    string
  >;
  memcpy: { block4kGiBps: number; block4kCopiesPerSecond: number; block128kGiBps: number };
  /**
   * Headline figures divided by the same run's plain copy of the same block size: 4 KiB IOPS per
   * 4 KiB copy per second, 128 KiB GiB/s per 128 KiB copy GiB/s (1.0 = as fast as the bare copy).
   */
  relativeToMemcpy: { randread4kQd128: number; randwrite4kQd128: number; seqread128k: number };
  rss?: RssChildReport;
  /** Always false: the speed figures are measured with the workload verifier off. */
  verify: false;
  cases: IoBenchCaseResult[];
  config: { durationMs: number; warmupMs: number; workingSetBytes: number; lbaBytes: number };
  environment: {
    node: string;
    platform: string;
    cpu: string;
    cpus: number;
    /** 1-minute load average when the bench started and ended (other load skews the figures). */
    loadAverage1m: [number, number];
  };
  notes: string[];
}

interface CaseSpec {
  name: string;
  pattern: "random" | "sequential";
  readPercent: number;
  blockBytes: number;
  queuePairs: number;
  queueDepth: number;
  completionMode: "interrupt" | "polling";
  headline?: "randread4kQd128Iops" | "randwrite4kQd128Iops" | "randread4kQd1Iops" | "seqread128kGiBps";
}

function spec(
  kind: "randread" | "randwrite" | "seqread",
  blockBytes: number,
  queueDepth: number,
  queuePairs: number,
  completionMode: "interrupt" | "polling",
  headline: CaseSpec["headline"],
): CaseSpec {
  return {
    name: `${kind}-${blockBytes / 1024}k-qd${queueDepth}-${queuePairs}qp-${completionMode}`,
    pattern: kind === "seqread" ? "sequential" : "random",
    readPercent: kind === "randwrite" ? 0 : 100,
    blockBytes,
    queuePairs,
    queueDepth,
    completionMode,
    headline,
  };
}

const K4 = 4096;
const K128 = 128 * 1024;

/** The cases `runIoBench` knows, in run order. */
export const IO_BENCH_CASES: readonly CaseSpec[] = [
  spec("randread", K4, 128, 1, "interrupt", "randread4kQd128Iops"),
  spec("randread", K4, 128, 1, "polling", "randread4kQd128Iops"),
  spec("randread", K4, 128, 4, "interrupt", "randread4kQd128Iops"),
  spec("randread", K4, 128, 4, "polling", "randread4kQd128Iops"),
  spec("randwrite", K4, 128, 1, "interrupt", "randwrite4kQd128Iops"),
  spec("randwrite", K4, 128, 4, "interrupt", "randwrite4kQd128Iops"),
  spec("randread", K4, 1, 1, "interrupt", "randread4kQd1Iops"),
  spec("randread", K4, 1, 1, "polling", "randread4kQd1Iops"),
  spec("seqread", K128, 32, 1, "interrupt", "seqread128kGiBps"),
  spec("seqread", K128, 32, 4, "interrupt", "seqread128kGiBps"),
];

const LBA_BYTES = 4096;
const GiB = 2 ** 30;
const MiB = 2 ** 20;
/** I/O queue pairs each VF gets (and each VM's driver creates at most). */
const VF_IO_QUEUE_PAIRS = 4;

/** Runs the I/O benchmark (see the module comment). */
export async function runIoBench(opts: IoBenchOptions = {}): Promise<IoBenchResult> {
  const durationMs = opts.durationMs ?? 2000;
  const warmupMs = opts.warmupMs ?? 250;
  const workingSetBytes = opts.workingSetBytes ?? 8 * MiB;
  if (!(durationMs >= 10)) throw new RangeError(`durationMs ${durationMs} < 10`);
  if (!(warmupMs >= 0)) throw new RangeError(`warmupMs ${warmupMs} < 0`);
  if (!Number.isInteger(workingSetBytes) || workingSetBytes < MiB || workingSetBytes % K128 !== 0) {
    throw new RangeError(`workingSetBytes ${workingSetBytes}: a multiple of 128 KiB, at least 1 MiB`);
  }
  const selected = IO_BENCH_CASES.filter((c) => opts.cases === undefined || opts.cases.includes(c.name));
  if (opts.cases !== undefined && selected.length !== opts.cases.length) {
    const known = new Set(IO_BENCH_CASES.map((c) => c.name));
    throw new RangeError(`unknown case(s): ${opts.cases.filter((n) => !known.has(n)).join(", ")}`);
  }

  const loadAtStart = loadavg()[0] ?? 0;
  const memcpy = measureMemcpy(workingSetBytes, Math.max(50, Math.min(500, durationMs / 4)));

  const lbaCount = Math.max(workingSetBytes * 2, 256 * MiB) / LBA_BYTES;
  const store = createMemoryBlockStore({ lbaBytes: LBA_BYTES, lbaCount });
  prefill(store, workingSetBytes);
  const vmKeys = [...new Set(selected.map((c) => vmKey(c)))];
  const host = await HostNode.start({
    name: "bench",
    namespaces: [{ nsid: 1, store }],
    secondaryCount: Math.max(1, vmKeys.length),
    pfHostMemoryBytes: 8 * MiB,
  });
  const vms = new Map<string, InProcessVm>();
  const cases: IoBenchCaseResult[] = [];
  try {
    for (const [i, key] of vmKeys.entries()) {
      const fn: NvmeFunction = await host.bringUpVf(i + 1, VF_IO_QUEUE_PAIRS);
      const [queuePairs, mode] = key.split("/") as [string, "interrupt" | "polling"];
      const vm = await startInProcessVm(fn, {
        memoryBytes: 64 * MiB,
        driver: { ioQueues: Number(queuePairs), ioQueueEntries: 256, completionMode: mode },
      });
      vms.set(key, vm);
    }
    const lbaRange = [0, workingSetBytes / LBA_BYTES] as const;
    for (const c of selected) {
      const vm = vms.get(vmKey(c))!;
      const r = await runCase(vm, c, lbaRange, warmupMs, durationMs);
      cases.push(r);
      opts.onCase?.(r);
    }
  } finally {
    for (const vm of vms.values()) {
      await vm.driver.shutdown().catch(() => {});
      vm.port.detach();
    }
    await host.stop().catch(() => {});
    store.close();
  }

  const rss = opts.rss === false ? undefined : await measureRssInChild(opts.rssVfs ?? 64);

  const best = (key: NonNullable<CaseSpec["headline"]>, figure: (r: IoBenchCaseResult) => number) => {
    let top: IoBenchCaseResult | undefined;
    for (const r of cases) {
      const s = IO_BENCH_CASES.find((c) => c.name === r.name);
      if (s?.headline === key && (top === undefined || figure(r) > figure(top))) top = r;
    }
    return { value: top === undefined ? 0 : figure(top), name: top?.name ?? "(not run)" };
  };
  const rr128 = best("randread4kQd128Iops", (r) => r.iops);
  const rw128 = best("randwrite4kQd128Iops", (r) => r.iops);
  const rr1 = best("randread4kQd1Iops", (r) => r.iops);
  const seq = best("seqread128kGiBps", (r) => r.gibPerSecond);
  const cpuList = cpus();
  return {
    randread4kQd128Iops: Math.round(rr128.value),
    randwrite4kQd128Iops: Math.round(rw128.value),
    randread4kQd1Iops: Math.round(rr1.value),
    seqread128kGiBps: round3(seq.value),
    memcpyGiBps: round3(memcpy.block128kGiBps),
    ...(rss === undefined ? {} : { rssMiB64Vfs: round3(rss.rssBytes / MiB), rss }),
    headlineCases: {
      randread4kQd128Iops: rr128.name,
      randwrite4kQd128Iops: rw128.name,
      randread4kQd1Iops: rr1.name,
      seqread128kGiBps: seq.name,
    },
    memcpy,
    relativeToMemcpy: {
      randread4kQd128: round3(rr128.value / memcpy.block4kCopiesPerSecond),
      randwrite4kQd128: round3(rw128.value / memcpy.block4kCopiesPerSecond),
      seqread128k: round3(seq.value / memcpy.block128kGiBps),
    },
    verify: false,
    cases,
    config: { durationMs, warmupMs, workingSetBytes, lbaBytes: LBA_BYTES },
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpu: cpuList[0]?.model ?? "unknown",
      cpus: cpuList.length,
      loadAverage1m: [round3(loadAtStart), round3(loadavg()[0] ?? 0)],
    },
    notes: [
      "All speed figures run with the workload verifier off (verify: false).",
      "Guest driver, controller and memory BlockStore share one JavaScript thread: every figure is one core.",
      "Queue depth is the total across queue pairs (QD128 on 4 queue pairs = 32 per queue).",
      "Headline figures are the best case of each kind; `cases` has every case.",
      `Working set ${workingSetBytes / MiB} MiB of namespace 1, written before the cases (reads copy real data).`,
      "memcpyGiBps: Uint8Array.set of 128 KiB blocks from random offsets of a working-set-sized buffer; " +
        "memcpy.block4kCopiesPerSecond bounds 4 KiB IOPS from the same working set.",
      ...(rss === undefined
        ? []
        : [
            `rssMiB64Vfs: child process, ${rss.vfs} VFs online, ${rss.ioQueuePairsPerVf} idle I/O queue pairs each ` +
              `(guest driver, polling mode, ${rss.guestRamBytesPerVf / MiB} MiB guest RAM per VF of which only ` +
              "touched pages are resident), after GC; it includes the Node.js runtime " +
              `(${round3(rss.baselineRssBytes / MiB)} MiB before anything was built).`,
          ]),
    ],
  };
}

function vmKey(c: CaseSpec): string {
  return `${c.queuePairs}/${c.completionMode}`;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Writes the working set once (a non-zero pattern, so reads copy data rather than fill zeroes). */
function prefill(store: MemoryBlockStore, bytes: number): void {
  const block = new Uint8Array(MiB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  for (let at = 0; at < bytes; at += MiB) store.write(at, block.subarray(0, Math.min(MiB, bytes - at)));
}

async function runCase(
  vm: InProcessVm,
  c: CaseSpec,
  lbaRange: readonly [number, number],
  warmupMs: number,
  durationMs: number,
): Promise<IoBenchCaseResult> {
  const perQueue = c.queueDepth / c.queuePairs;
  if (!Number.isInteger(perQueue))
    throw new RangeError(`${c.name}: queue depth not divisible by queue pairs`);
  const options: WorkloadOptions = {
    pattern: c.pattern,
    readPercent: c.readPercent,
    blockBytes: c.blockBytes,
    queueDepth: perQueue,
    queues: c.queuePairs,
    lbaRange,
    seed: 0x5eed,
    verify: false,
  };
  if (warmupMs > 0) {
    const warm = new Workload(vm.driver, vm.memory, { ...options, durationMs: warmupMs });
    await warm.start();
    warm.release();
  }
  const before = vm.driver.stats();
  const w = new Workload(vm.driver, vm.memory, { ...options, durationMs });
  const cpu0 = process.cpuUsage();
  const s = await w.start();
  const cpu = process.cpuUsage(cpu0);
  w.release();
  const after = vm.driver.stats();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const ops = Math.max(1, s.ops);
  return {
    name: c.name,
    pattern: c.pattern,
    readPercent: c.readPercent,
    blockBytes: c.blockBytes,
    queuePairs: c.queuePairs,
    queueDepth: c.queueDepth,
    queueDepthPerQueue: perQueue,
    completionMode: c.completionMode,
    verify: false,
    elapsedMs: round3(s.elapsedMs),
    ops: s.ops,
    errors: s.errors,
    iops: Math.round(s.iops),
    iopsPerCpuSecond: cpuMs > 0 ? Math.round(s.ops / (cpuMs / 1000)) : 0,
    cpuMs: round3(cpuMs),
    gibPerSecond: round3((s.mibPerSecond * MiB) / GiB),
    latencyUs: {
      mean: round3(s.latency.meanUs),
      p50: s.latency.p50Us,
      p99: s.latency.p99Us,
      max: round3(s.latency.maxUs),
    },
    interruptsPerOp: round3((after.interrupts - before.interrupts) / ops),
    doorbellsPerOp: round3((after.mmioDoorbells - before.mmioDoorbells) / ops),
  };
}

/** `Uint8Array.set` of 4 KiB and 128 KiB blocks from random aligned offsets; `timeMs` per size. */
function measureMemcpy(
  workingSetBytes: number,
  timeMs: number,
): { block4kGiBps: number; block4kCopiesPerSecond: number; block128kGiBps: number } {
  const src = new Uint8Array(workingSetBytes);
  for (let i = 0; i < src.length; i += 4096) src[i] = i & 0xff; // touch every page
  const dst = new Uint8Array(128 * K128); // as large as 128 in-flight 128 KiB buffers
  const once = (blockBytes: number): { bytesPerSecond: number; copiesPerSecond: number } => {
    const srcSlots = workingSetBytes / blockBytes;
    const dstSlots = dst.length / blockBytes;
    let x = 0x9e3779b9;
    let copies = 0;
    const t0 = performance.now();
    let t = t0;
    while (t - t0 < timeMs) {
      for (let i = 0; i < 256; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        const s = ((x >>> 0) % srcSlots) * blockBytes;
        const d = (copies % dstSlots) * blockBytes;
        dst.set(src.subarray(s, s + blockBytes), d);
        copies++;
      }
      t = performance.now();
    }
    const seconds = (t - t0) / 1000;
    return { bytesPerSecond: (copies * blockBytes) / seconds, copiesPerSecond: copies / seconds };
  };
  once(K4); // warm-up
  const a = once(K4);
  const b = once(K128);
  return {
    block4kGiBps: round3(a.bytesPerSecond / GiB),
    block4kCopiesPerSecond: Math.round(a.copiesPerSecond),
    block128kGiBps: round3(b.bytesPerSecond / GiB),
  };
}

/** Runs `rss-child.ts` in a fresh Node.js process and returns its report. */
export function measureRssInChild(vfs: number): Promise<RssChildReport> {
  const script = fileURLToPath(new URL("./rss-child.ts", import.meta.url));
  const root = fileURLToPath(new URL("../..", import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", "--import", "tsx", script, String(vfs)], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      err += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) {
        reject(new Error(`rss child exited with ${code}: ${err.trim().slice(-2000)}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as RssChildReport);
      } catch (e) {
        reject(new Error(`rss child printed no JSON: ${out.slice(0, 200)}`, { cause: e }));
      }
    });
  });
}
