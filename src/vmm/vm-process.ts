/**
 * `nvmig vm --attach SOCKET`: a VMM process on one function exported over vfio-user — guest RAM in a
 * memfd shared with the server (DMA_MAP with the fd), the BAR0 doorbell page mmap'd, MSI-X through
 * eventfds — running the guest NVMe driver and the verified workload, then printing a summary (or one
 * JSON object) and resolving to the exit code: 0 iff the run verified (no lost write, bad read,
 * duplicate or missing completion, no I/O error).
 *
 *   runVmProcess
 *     memfd guest RAM ─ connect SOCKET ─ VERSION ─ VfioUserPort.attach ─ driver.init
 *     [--control PATH: vm-control.ts channel: pause / resume / stats / dirty log / readPages / retarget / stop]
 *     Workload.start → (ops | duration | SIGINT/SIGTERM | control "stop") → drain → verify (final read-back)
 *     driver.shutdown ─ port.detach ─ close ─ print
 *
 * A run with neither `ops` nor `durationMs` lasts until SIGINT/SIGTERM or a control "stop".
 */
import { GuestMemoryFd } from "../native/guest-memory-fd.ts";
import { VfioUserClient } from "../vfio-user/client.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import { GUEST_PAGE_BYTES, GuestMemory } from "./guest-memory.ts";
import { GuestNvmeDriver } from "./nvme-driver.ts";
import type { VerifyReport } from "./verifier.ts";
import { VfioUserPort, type VfioUserPortEvent } from "./vfio-user-port.ts";
import { startVmControl, type VmControlServer } from "./vm-control.ts";
import { Workload, type WorkloadStats } from "./workload.ts";

const MiB = 1 << 20;

export interface VmProcessOptions {
  /** Path of the function's vfio-user UNIX socket. Required. */
  attach: string;
  /** Guest RAM, bytes. Default 64 MiB; a multiple of 4096, 4 MiB..4 GiB. Wins over `memoryMib`. */
  memoryBytes?: number;
  /** Guest RAM, MiB (the CLI's form). Default 64. */
  memoryMib?: number;
  /** I/O queues the driver creates and the workload uses. Default 1, range 1..64. Wins over `queues`. */
  ioQueues?: number;
  /** Same as `ioQueues` (the CLI's name). */
  queues?: number;
  /** Commands outstanding per queue. Default 16, range 1..1024. */
  queueDepth?: number;
  /** Bytes per command, a multiple of the LBA size. Default 4096. */
  blockBytes?: number;
  /** Share of reads, percent 0..100. Default 50. */
  readPercent?: number;
  /** LBA choice. Default "random". */
  pattern?: "random" | "sequential";
  /** Commands to issue in total, then drain and verify. Default unlimited. */
  ops?: number | undefined;
  /** Run time, ms, then drain and verify. Default unlimited. */
  durationMs?: number | undefined;
  /** Workload PRNG seed. Default 1. */
  seed?: number;
  /** Write verifiable patterns and check every read. Default true. */
  verify?: boolean;
  /** Print one JSON object instead of a human-readable summary. Default false. */
  json?: boolean;
  /** "interrupt" (default: MSI-X through eventfds) or "polling". */
  completionMode?: "interrupt" | "polling";
  /** Use shadow doorbells + EventIdx when the controller offers them. Default false. */
  shadowDoorbells?: boolean;
  /**
   * LBAs the workload uses: [first, count]. Default [0, min(namespace size, 262144)] — the verifier
   * keeps 9 bytes per LBA, so whole multi-terabyte namespaces are not tracked by default.
   */
  lbaRange?: readonly [number, number];
  /** Serve the control channel (vm-control.ts) at this UNIX socket path. Default: none. */
  control?: string;
  /** vfio-user reply timeout, ms. Default 5000. */
  replyTimeoutMs?: number;
  /** Where the summary / JSON line goes. Default `console.log`. */
  out?: (line: string) => void;
  /** Where port warnings go. Default `console.error`. */
  err?: (line: string) => void;
}

/** The JSON object printed with `json` (and returned by `runVmProcessDetailed`). */
export interface VmProcessResult {
  /** True iff the run verified (with `verify: false`: no I/O error, duplicate or missing completion). */
  verified: boolean;
  ops: number;
  reads: number;
  writes: number;
  lostWrites: number;
  badReads: number;
  duplicateCompletions: number;
  missingCompletions: number;
  ioErrors: number;
  iops: number;
  mibPerSecond: number;
  elapsedMs: number;
  latencyUs: { mean: number; p50: number; p99: number; max: number };
  /** Whether the workload's data was checked (`verify` option). */
  verifyEnabled: boolean;
  completionMode: "interrupt" | "polling";
  shadowDoorbells: boolean;
  doorbellsMapped: boolean;
  interrupts: number;
  mmioDoorbells: number;
  postedWrites: number;
  failures: VerifyReport["failures"];
}

export class VmProcessError extends Error {
  override readonly name = "VmProcessError";
  constructor(
    readonly code: "invalid-argument" | "connect-failed",
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
  }
}

/** Runs the VM (see the module comment); resolves to the exit code. */
export async function runVmProcess(opts: VmProcessOptions): Promise<number> {
  const r = await runVmProcessDetailed(opts);
  return r.verified ? 0 : 1;
}

function intOption(name: string, value: number, lo: number, hi: number): number {
  if (!Number.isInteger(value) || value < lo || value > hi) {
    throw new VmProcessError("invalid-argument", `${name} ${value}: an integer in ${lo}..${hi}`);
  }
  return value;
}

/** `runVmProcess`, resolving to the result object instead of the exit code (still prints it). */
export async function runVmProcessDetailed(opts: VmProcessOptions): Promise<VmProcessResult> {
  const out = opts.out ?? ((l: string) => console.log(l));
  const err = opts.err ?? ((l: string) => console.error(l));
  const memoryBytes = intOption(
    "memoryBytes",
    opts.memoryBytes ?? (opts.memoryMib ?? 64) * MiB,
    4 * MiB,
    4 * 1024 * MiB,
  );
  if (memoryBytes % GUEST_PAGE_BYTES !== 0)
    throw new VmProcessError("invalid-argument", "memoryBytes: a multiple of 4096");
  const ioQueues = intOption("ioQueues", opts.ioQueues ?? opts.queues ?? 1, 1, 64);
  const queueDepth = intOption("queueDepth", opts.queueDepth ?? 16, 1, 1024);
  const blockBytes = intOption("blockBytes", opts.blockBytes ?? 4096, 512, 1 << 20);
  const completionMode = opts.completionMode ?? "interrupt";
  const shadowDoorbells = opts.shadowDoorbells ?? false;
  const verify = opts.verify ?? true;

  const ram = GuestMemoryFd.create("nvmig-guest-ram", memoryBytes);
  const cleanups: Array<() => unknown> = [() => ram.close()];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch {
        // keep cleaning up
      }
    }
    cleanups.length = 0;
  };
  try {
    const mem = new GuestMemory(ram.bytes());
    let workloadRef: Workload | undefined;
    const logPort = (e: VfioUserPortEvent) => {
      if (e.level !== "info") err(`nvmig vm: ${e.name}${e.detail === undefined ? "" : `: ${e.detail}`}`);
      if (e.name === "server-disconnected") workloadRef?.stop().catch(() => {});
    };
    const connect = async (path: string): Promise<VfioUserClient> => {
      let transport: SocketTransport;
      try {
        transport = SocketTransport.connect(path);
      } catch (e) {
        throw new VmProcessError("connect-failed", `cannot connect to ${path}: ${(e as Error).message}`, {
          cause: e,
        });
      }
      try {
        return await VfioUserClient.connect(transport, { replyTimeoutMs: opts.replyTimeoutMs ?? 5000 });
      } catch (e) {
        transport.close();
        throw new VmProcessError(
          "connect-failed",
          `vfio-user negotiation with ${path} failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
    };
    let client = await connect(opts.attach);
    cleanups.push(() => client.close());
    const port = await VfioUserPort.attach(client, ram, { log: logPort });
    cleanups.push(() => port.detach());

    const driver = new GuestNvmeDriver(port, mem, {
      ioQueues,
      ioQueueEntries: Math.max(64, queueDepth + 1),
      completionMode,
      shadowDoorbells,
      maxTransferBytes: Math.max(128 * 1024, blockBytes),
    });
    await driver.init();
    cleanups.push(() => driver.shutdown());

    const nsid = Math.min(...driver.namespaces.keys());
    const ns = driver.namespaces.get(nsid);
    if (ns === undefined)
      throw new VmProcessError("invalid-argument", "the function has no active namespace");
    const lbaRange = opts.lbaRange ?? [0, Math.min(ns.nsze, 262144)];
    const workload = new Workload(driver, mem, {
      pattern: opts.pattern ?? "random",
      readPercent: opts.readPercent ?? 50,
      blockBytes,
      queueDepth,
      queues: Math.min(ioQueues, driver.ioQueueCount),
      nsid,
      lbaRange,
      ...(opts.ops === undefined ? {} : { ops: opts.ops }),
      ...(opts.durationMs === undefined ? {} : { durationMs: opts.durationMs }),
      seed: opts.seed ?? 1,
      verify,
    });
    workloadRef = workload;

    let control: VmControlServer | undefined;
    if (opts.control !== undefined) {
      control = await startVmControl(opts.control, {
        pageBytes: GUEST_PAGE_BYTES,
        pause: () => port.pause(),
        resume: () => port.resume(),
        stats: () => ({
          paused: port.isPaused,
          workload: workload.stats(),
          driver: driver.stats(),
          port: port.stats(),
        }),
        startDirtyLog: () => mem.startDirtyLog(),
        collectDirty: () => Array.from(mem.collectDirty()),
        stopDirtyLog: () => mem.stopDirtyLog(),
        readPages: (pages) => {
          const data = new Uint8Array(pages.length * GUEST_PAGE_BYTES);
          pages.forEach((p, i) => {
            if (p >= mem.pageCount)
              throw new RangeError(`page ${p} is outside guest RAM (${mem.pageCount} pages)`);
            data.set(mem.view(p * GUEST_PAGE_BYTES, GUEST_PAGE_BYTES), i * GUEST_PAGE_BYTES);
          });
          return data;
        },
        retarget: async (path) => {
          const next = await connect(path);
          try {
            await port.retarget(next);
          } catch (e) {
            next.close();
            throw e;
          }
          const old = client;
          client = next;
          old.close();
        },
        stop: () => {
          workload.stop().catch(() => {});
        },
      });
      const c = control;
      cleanups.push(() => c.close());
    }

    const onSignal = () => {
      workload.stop().catch(() => {});
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    cleanups.push(() => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    });

    const stats = await workload.start();
    const report = verify ? await workload.verify() : undefined;
    workload.release();
    const result = summarize(stats, report, verify, port, driver, completionMode);
    await cleanup();
    out(opts.json === true ? JSON.stringify(result) : humanSummary(result, opts.attach));
    return result;
  } finally {
    await cleanup();
  }
}

function summarize(
  s: WorkloadStats,
  report: VerifyReport | undefined,
  verify: boolean,
  port: VfioUserPort,
  driver: GuestNvmeDriver,
  completionMode: "interrupt" | "polling",
): VmProcessResult {
  const ds = driver.stats();
  const ps = port.stats();
  const dup = (report?.duplicateCompletions ?? 0) + s.duplicateCompletions + ds.duplicateCompletions;
  const missing = report?.missingCompletions ?? s.missingCompletions;
  const ioErrors = report?.ioErrors ?? s.errors;
  const verified = verify
    ? report!.verified && ds.duplicateCompletions === 0
    : ioErrors === 0 && dup === 0 && missing === 0;
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    verified,
    ops: s.ops,
    reads: s.reads,
    writes: s.writes,
    lostWrites: report?.lostWrites ?? 0,
    badReads: report?.badReads ?? 0,
    duplicateCompletions: dup,
    missingCompletions: missing,
    ioErrors,
    iops: Math.round(s.iops),
    mibPerSecond: r3(s.mibPerSecond),
    elapsedMs: r3(s.elapsedMs),
    latencyUs: {
      mean: r3(s.latency.meanUs),
      p50: s.latency.p50Us,
      p99: s.latency.p99Us,
      max: r3(s.latency.maxUs),
    },
    verifyEnabled: verify,
    completionMode,
    shadowDoorbells: driver.shadowDoorbellsActive,
    doorbellsMapped: port.doorbellsMapped,
    interrupts: ps.interruptsDelivered,
    mmioDoorbells: ps.mmioDoorbells,
    postedWrites: ps.postedWrites,
    failures: report?.failures ?? [],
  };
}

function humanSummary(r: VmProcessResult, socket: string): string {
  const lines = [
    `nvmig vm on ${socket}: ${r.verified ? "VERIFIED" : "NOT VERIFIED"}`,
    `  ops ${r.ops} (reads ${r.reads}, writes ${r.writes}) in ${r.elapsedMs} ms: ${r.iops} IOPS, ${r.mibPerSecond} MiB/s`,
    `  latency µs: mean ${r.latencyUs.mean}, p50 ${r.latencyUs.p50}, p99 ${r.latencyUs.p99}, max ${r.latencyUs.max}`,
    `  lost writes ${r.lostWrites}, bad reads ${r.badReads}, duplicate completions ${r.duplicateCompletions}, ` +
      `missing completions ${r.missingCompletions}, I/O errors ${r.ioErrors}${r.verifyEnabled ? "" : " (data not verified: --no-verify)"}`,
    `  ${r.completionMode} mode, ${r.interrupts} interrupts, doorbells ${r.doorbellsMapped ? "mmap'd" : "by message"} ` +
      `(${r.mmioDoorbells} stores)${r.shadowDoorbells ? ", shadow doorbells" : ""}`,
  ];
  for (const f of r.failures.slice(0, 5))
    lines.push(`  ${f.kind}${f.lba === undefined ? "" : ` LBA ${f.lba}`}: ${f.detail}`);
  return lines.join("\n");
}
