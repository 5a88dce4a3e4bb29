/**
 * `nvmig bench vfio-user`: the same VF driven through a vfio-user socket by a VMM in another process,
 * and driven in process, under the same run conditions.
 *
 *   this process (the server: one JavaScript thread = one core)      child process (the VMM)
 *     HostNode: subsystem, PF driver, memory BlockStore                 memfd guest RAM (64 MiB)
 *     VF1 exported (exportNvmeFunction) ◄── UNIX socket ──────►         VfioUserPort + GuestNvmeDriver
 *       doorbell page polled (the child stores into it, mmap'd)          (shadow doorbells, MSI-X
 *       guest RAM mmap'd from the child's DMA_MAP fd                      eventfds or polling)
 *       MSI-X → the child's eventfds                                      Workload (verify off)
 *
 *   in-process run: the same VF, `startInProcessVm` (InProcessPort) with the same driver options and
 *   workload, guest driver and controller sharing this process's thread.
 *
 * Each run warms up for `warmupMs` then measures for `durationMs`. The namespace working set is
 * written once first, so reads copy real data. `serverCpuUtilization` is this process's CPU time
 * (user + system) over wall time during the child's measurement: 1.0 = one core fully busy.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { HostNode } from "../host/host-node.ts";
import { exportNvmeFunction } from "../host/vfio-user-export.ts";
import { createMemoryBlockStore, type MemoryBlockStore } from "../storage/memory-block-store.ts";
import { startInProcessVm } from "../vmm/in-process-vm.ts";
import { Workload, type WorkloadOptions } from "../vmm/workload.ts";
import type { VfioUserVmChildOptions, VfioUserVmChildResult } from "./vfio-user-vm-child.ts";

export interface VfioUserBenchOptions {
  /** Measured time per run, ms. Default 2000, range ≥ 10. */
  durationMs?: number;
  /** Warm-up per run before measuring, ms. Default 300, range ≥ 0. */
  warmupMs?: number;
  /** Bytes of namespace 1 written first and addressed by the runs. Default 16 MiB; a multiple of 1 MiB. */
  workingSetBytes?: number;
  /** Commands outstanding, all queues together. Default 32, range 1..1024. */
  queueDepth?: number;
  /** I/O queue pairs. Default 1, range 1..4. */
  queuePairs?: number;
  /** Completion modes to run (each through the socket and in process). Default ["interrupt", "polling"]. */
  completionModes?: readonly ("interrupt" | "polling")[];
  /** Called after each run (progress). */
  onCase?: (c: VfioUserBenchCase) => void;
}

export interface VfioUserBenchCase {
  /** e.g. "randread-4k-qd32-1qp-interrupt-socket". */
  name: string;
  transport: "socket" | "in-process";
  completionMode: "interrupt" | "polling";
  queuePairs: number;
  queueDepth: number;
  ops: number;
  errors: number;
  elapsedMs: number;
  iops: number;
  latencyUs: { mean: number; p50: number; p99: number; max: number };
  /** socket: this (server) process's CPU over wall time during the measurement; in-process: the one process's. */
  serverCpuUtilization: number;
  /** Completed commands per second of server CPU time. */
  serverIopsPerCpuSecond: number;
  /** socket: the VMM child's CPU over wall time; in-process: same as serverCpuUtilization. */
  vmmCpuUtilization: number;
  interruptsPerOp: number;
  /** MMIO doorbell stores (socket: into the mmap'd page) per command. */
  mmioDoorbellsPerOp: number;
  /** Doorbell updates the shadow doorbells / EventIdx saved, per command. */
  skippedDoorbellsPerOp: number;
  shadowDoorbells: boolean;
}

export interface VfioUserBenchResult {
  /** 4 KiB random read IOPS at QD32 through the socket, VMM in a child process, interrupt mode. */
  randread4kQd32Iops: number;
  /** The same run in process (InProcessPort), interrupt mode. */
  inProcessRandread4kQd32Iops: number;
  /** Socket ÷ in-process, interrupt mode. */
  socketToInProcessRatio: number;
  /** Through the socket, polling mode (undefined when not run). */
  randread4kQd32PollingIops?: number;
  /** In process, polling mode (undefined when not run). */
  inProcessRandread4kQd32PollingIops?: number;
  /** Server CPU utilisation during the headline socket run (1.0 = one core). */
  serverCpuUtilization: number;
  /** Headline socket IOPS per second of server CPU. */
  serverIopsPerCpuSecond: number;
  /** Where the VMM ran for the socket figures. */
  vmmProcess: "child";
  /** Always false: speed figures run without the workload verifier. */
  verify: false;
  cases: VfioUserBenchCase[];
  config: {
    durationMs: number;
    warmupMs: number;
    workingSetBytes: number;
    queueDepth: number;
    queuePairs: number;
    blockBytes: number;
    guestRamBytes: number;
    shadowDoorbells: true;
  };
  environment: { node: string; platform: string; cpu: string; cpus: number };
  notes: string[];
}

const MiB = 2 ** 20;
const LBA_BYTES = 4096;
const BLOCK_BYTES = 4096;
const GUEST_RAM_BYTES = 64 * MiB;
const IO_QUEUE_ENTRIES = 256;

function r3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Runs the benchmark (see the module comment). */
export async function runVfioUserBench(opts: VfioUserBenchOptions = {}): Promise<VfioUserBenchResult> {
  const durationMs = opts.durationMs ?? 2000;
  const warmupMs = opts.warmupMs ?? 300;
  const workingSetBytes = opts.workingSetBytes ?? 16 * MiB;
  const queueDepth = opts.queueDepth ?? 32;
  const queuePairs = opts.queuePairs ?? 1;
  const modes = opts.completionModes ?? ["interrupt", "polling"];
  if (!(durationMs >= 10)) throw new RangeError(`durationMs ${durationMs} < 10`);
  if (!(warmupMs >= 0)) throw new RangeError(`warmupMs ${warmupMs} < 0`);
  if (!Number.isInteger(workingSetBytes) || workingSetBytes < MiB || workingSetBytes % MiB !== 0) {
    throw new RangeError(`workingSetBytes ${workingSetBytes}: a multiple of 1 MiB`);
  }
  if (!Number.isInteger(queuePairs) || queuePairs < 1 || queuePairs > 4)
    throw new RangeError("queuePairs: 1..4");
  if (
    !Number.isInteger(queueDepth) ||
    queueDepth < queuePairs ||
    queueDepth > 1024 ||
    queueDepth % queuePairs !== 0
  ) {
    throw new RangeError("queueDepth: a multiple of queuePairs, ≤ 1024");
  }
  const perQueue = queueDepth / queuePairs;
  const workload: Omit<WorkloadOptions, "durationMs" | "verify"> = {
    pattern: "random",
    readPercent: 100,
    blockBytes: BLOCK_BYTES,
    queueDepth: perQueue,
    queues: queuePairs,
    lbaRange: [0, workingSetBytes / LBA_BYTES],
    seed: 0x5eed,
  };

  const store = createMemoryBlockStore({
    lbaBytes: LBA_BYTES,
    lbaCount: Math.max(2 * workingSetBytes, 64 * MiB) / LBA_BYTES,
  });
  prefill(store, workingSetBytes);
  const host = await HostNode.start({
    name: "vfio-user-bench",
    namespaces: [{ nsid: 1, store }],
    secondaryCount: 1,
    pfHostMemoryBytes: 8 * MiB,
  });
  const dir = mkdtempSync(join(tmpdir(), "nvmig-vfio-user-bench-"));
  const cases: VfioUserBenchCase[] = [];
  const name = (transport: string, mode: string) =>
    `randread-4k-qd${queueDepth}-${queuePairs}qp-${mode}-${transport}`;
  try {
    const fn = await host.bringUpVf(1, 4);
    for (const mode of modes) {
      const inProc = await inProcessCase(fn, mode, workload, warmupMs, durationMs);
      const c1 = { ...inProc, name: name("in-process", mode), queuePairs, queueDepth };
      cases.push(c1);
      opts.onCase?.(c1);
      const sock = await socketCase(fn, mode, workload, warmupMs, durationMs, join(dir, `vf1-${mode}.sock`));
      const c2 = { ...sock, name: name("socket", mode), queuePairs, queueDepth };
      cases.push(c2);
      opts.onCase?.(c2);
    }
  } finally {
    await host.stop().catch(() => {});
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const find = (t: string, m: string) => cases.find((c) => c.transport === t && c.completionMode === m);
  const headMode = modes.includes("interrupt") ? "interrupt" : modes[0]!;
  const sock = find("socket", headMode);
  const inProc = find("in-process", headMode);
  const sockPoll = find("socket", "polling");
  const inProcPoll = find("in-process", "polling");
  const cpuList = cpus();
  return {
    randread4kQd32Iops: sock?.iops ?? 0,
    inProcessRandread4kQd32Iops: inProc?.iops ?? 0,
    socketToInProcessRatio:
      sock !== undefined && inProc !== undefined && inProc.iops > 0 ? r3(sock.iops / inProc.iops) : 0,
    ...(sockPoll === undefined ? {} : { randread4kQd32PollingIops: sockPoll.iops }),
    ...(inProcPoll === undefined ? {} : { inProcessRandread4kQd32PollingIops: inProcPoll.iops }),
    serverCpuUtilization: sock?.serverCpuUtilization ?? 0,
    serverIopsPerCpuSecond: sock?.serverIopsPerCpuSecond ?? 0,
    vmmProcess: "child",
    verify: false,
    cases,
    config: {
      durationMs,
      warmupMs,
      workingSetBytes,
      queueDepth,
      queuePairs,
      blockBytes: BLOCK_BYTES,
      guestRamBytes: GUEST_RAM_BYTES,
      shadowDoorbells: true,
    },
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpu: cpuList[0]?.model ?? "unknown",
      cpus: cpuList.length,
    },
    notes: [
      "Speed figures run with the workload verifier off (verify: false); 100% random 4 KiB reads.",
      "socket: the VMM (guest driver + workload) is a child process; doorbells are stores into the server's mmap'd " +
        "doorbell page (shadow doorbells + EventIdx on), guest RAM is the child's memfd mmap'd by the server, " +
        "interrupts are eventfds (interrupt mode) or none (polling mode).",
      "in-process: the same VF, driver options and workload with the guest driver in the server's process (one thread).",
      "serverCpuUtilization counts this whole process (server, controller, memory BlockStore); 1.0 = one core.",
      `Machine: ${cpuList.length} cores shared with whatever else runs; compare ratios rather than absolutes.`,
    ],
  };
}

/** Writes the working set once (a non-zero pattern). */
function prefill(store: MemoryBlockStore, bytes: number): void {
  const block = new Uint8Array(MiB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  for (let at = 0; at < bytes; at += MiB) store.write(at, block.subarray(0, Math.min(MiB, bytes - at)));
}

type CaseFigures = Omit<VfioUserBenchCase, "name" | "queuePairs" | "queueDepth">;

async function inProcessCase(
  fn: NvmeFunction,
  mode: "interrupt" | "polling",
  workload: Omit<WorkloadOptions, "durationMs" | "verify">,
  warmupMs: number,
  durationMs: number,
): Promise<CaseFigures> {
  const vm = await startInProcessVm(fn, {
    memoryBytes: GUEST_RAM_BYTES,
    driver: {
      ioQueues: workload.queues,
      ioQueueEntries: IO_QUEUE_ENTRIES,
      completionMode: mode,
      shadowDoorbells: true,
    },
  });
  try {
    if (warmupMs > 0) {
      const warm = new Workload(vm.driver, vm.memory, { ...workload, durationMs: warmupMs, verify: false });
      await warm.start();
      warm.release();
    }
    const before = vm.driver.stats();
    const w = new Workload(vm.driver, vm.memory, { ...workload, durationMs, verify: false });
    const cpu0 = process.cpuUsage();
    const s = await w.start();
    const cpu = process.cpuUsage(cpu0);
    w.release();
    const after = vm.driver.stats();
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const ops = Math.max(1, s.ops);
    const util = s.elapsedMs > 0 ? cpuMs / s.elapsedMs : 0;
    return {
      transport: "in-process",
      completionMode: mode,
      ops: s.ops,
      errors: s.errors,
      elapsedMs: r3(s.elapsedMs),
      iops: Math.round(s.iops),
      latencyUs: {
        mean: r3(s.latency.meanUs),
        p50: s.latency.p50Us,
        p99: s.latency.p99Us,
        max: r3(s.latency.maxUs),
      },
      serverCpuUtilization: r3(util),
      serverIopsPerCpuSecond: cpuMs > 0 ? Math.round(s.ops / (cpuMs / 1000)) : 0,
      vmmCpuUtilization: r3(util),
      interruptsPerOp: r3((after.interrupts - before.interrupts) / ops),
      mmioDoorbellsPerOp: r3((after.mmioDoorbells - before.mmioDoorbells) / ops),
      skippedDoorbellsPerOp: r3((after.skippedDoorbells - before.skippedDoorbells) / ops),
      shadowDoorbells: vm.driver.shadowDoorbellsActive,
    };
  } finally {
    await vm.driver.shutdown().catch(() => {});
    vm.port.detach();
  }
}

async function socketCase(
  fn: NvmeFunction,
  mode: "interrupt" | "polling",
  workload: Omit<WorkloadOptions, "durationMs" | "verify">,
  warmupMs: number,
  durationMs: number,
  path: string,
): Promise<CaseFigures> {
  const exported = exportNvmeFunction(fn, { path, label: "vf1" });
  const childOptions: VfioUserVmChildOptions = {
    socket: path,
    memoryBytes: GUEST_RAM_BYTES,
    ioQueueEntries: IO_QUEUE_ENTRIES,
    completionMode: mode,
    shadowDoorbells: true,
    workload,
    warmupMs,
    durationMs,
  };
  const script = fileURLToPath(new URL("./vfio-user-vm-child.ts", import.meta.url));
  const root = fileURLToPath(new URL("../..", import.meta.url));
  let child: ChildProcess | undefined;
  try {
    const { result, serverCpuMs, wallMs } = await new Promise<{
      result: VfioUserVmChildResult;
      serverCpuMs: number;
      wallMs: number;
    }>((resolve, reject) => {
      const proc = spawn(process.execPath, ["--import", "tsx", script, JSON.stringify(childOptions)], {
        cwd: root,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = proc;
      let out = "";
      let err = "";
      let cpu0: NodeJS.CpuUsage | undefined;
      let t0 = 0;
      let measured: { result: VfioUserVmChildResult; serverCpuMs: number; wallMs: number } | undefined;
      proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        for (;;) {
          const nl = out.indexOf("\n");
          if (nl < 0) break;
          const line = out.slice(0, nl);
          out = out.slice(nl + 1);
          let msg: { event?: string } & Partial<VfioUserVmChildResult>;
          try {
            msg = JSON.parse(line) as typeof msg;
          } catch {
            continue;
          }
          if (msg.event === "measuring") {
            cpu0 = process.cpuUsage();
            t0 = performance.now();
          } else if (msg.event === "result" && cpu0 !== undefined) {
            const cpu = process.cpuUsage(cpu0);
            measured = {
              result: msg as VfioUserVmChildResult,
              serverCpuMs: (cpu.user + cpu.system) / 1000,
              wallMs: performance.now() - t0,
            };
          }
        }
      });
      proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
        err += d;
      });
      proc.on("error", reject);
      proc.on("close", (code) => {
        if (code !== 0 || measured === undefined) {
          reject(new Error(`vfio-user bench VMM exited with ${code}: ${err.trim().slice(-2000)}`));
          return;
        }
        resolve(measured);
      });
    });
    const ops = Math.max(1, result.ops);
    return {
      transport: "socket",
      completionMode: mode,
      ops: result.ops,
      errors: result.errors,
      elapsedMs: r3(result.elapsedMs),
      iops: Math.round(result.iops),
      latencyUs: {
        mean: r3(result.latencyUs.mean),
        p50: result.latencyUs.p50,
        p99: result.latencyUs.p99,
        max: r3(result.latencyUs.max),
      },
      serverCpuUtilization: r3(wallMs > 0 ? serverCpuMs / wallMs : 0),
      serverIopsPerCpuSecond: serverCpuMs > 0 ? Math.round(result.ops / (serverCpuMs / 1000)) : 0,
      vmmCpuUtilization: r3(result.elapsedMs > 0 ? result.cpuMs / result.elapsedMs : 0),
      interruptsPerOp: r3(result.interrupts / ops),
      mmioDoorbellsPerOp: r3(result.mmioDoorbells / ops),
      skippedDoorbellsPerOp: r3(result.skippedDoorbells / ops),
      shadowDoorbells: result.shadowDoorbellsActive,
    };
  } finally {
    child?.kill();
    exported.close();
  }
}
