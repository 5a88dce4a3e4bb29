/**
 * The migration orchestrator: moves a running VM's controlled NVMe function (device state, and
 * namespace data when storage is local) and the VM's RAM from a source to a destination with
 * pre-copy, dirty tracking, a downtime limit and rollback.
 *
 *   orchestrator            source device         destination device        VM
 *   ──────────────────────────────────────────────────────────────────────────────────────────
 *   setState(RESUMING) ───────────────────────────►  RUNNING→STOP→RESUMING
 *   CPU + DMA dirty log on ──► DMA_LOGGING_START                               dirty log on
 *   setState(PRE_COPY) ──────► RUNNING→PRE_COPY (+UDMQ logging, local storage)
 *   loop: dirty RAM ──────────────────────────────────────────────────────────► pages
 *         readData → writeData ───────────────────►  (namespace data)
 *         until (pending RAM + stop_copy_length) ÷ bandwidth ≤ maxDowntimeMs
 *   ── downtime ──                                                               vCPUs paused
 *   dirty RAM (CPU + device report) ──────────────────────────────────────────► pages
 *   setState(STOP_COPY) ─────► Suspend, Get Controller State
 *   readData until EOS ──────────────────────────►  writeData
 *   last dirty RAM (device report: DMA before the suspend) ───────────────────► pages
 *   setState(RUNNING) ───────────────────────────►  Set Controller State, Resume
 *   ── end of downtime ──                                                        vCPUs run there
 *   source setState(STOP), logging off
 *
 * The dirty RAM found once the vCPUs are stopped goes before the device stops: only the pages the
 * device writes between that report and its suspend are left for after it, so the device is stopped
 * for its state alone (the device downtime) while the vCPU downtime covers the RAM too. Between
 * pre-copy iterations the orchestrator yields one turn of the event loop, so a VM sharing this
 * thread (in-process endpoints) runs, dirties RAM and does I/O as a concurrent VM would.
 *
 * Rule: the VM never runs on both sides. Any failure before the destination device runs rolls back:
 * the source device returns to RUNNING (reset if a SET fails), the source vCPUs resume, the
 * destination device is reset and its RAM discarded.
 */
import { MigState } from "../vfio/states.ts";
import type { DeviceEndpoint, VmDestination, VmSource } from "./endpoints.ts";
import { MigrationError, type MigrationErrorCode } from "./errors.ts";
import {
  type IterationRecord,
  type MigrationPhase,
  type MigrationReport,
  PhaseClock,
  round,
} from "./report.ts";

const PAGE_BYTES = 4096;
/** Pages per `writePages` call. */
const SEND_BATCH_PAGES = 256;
/** An iteration moving fewer bytes than this only raises the bandwidth estimate (fixed costs dominate). */
const BANDWIDTH_SAMPLE_BYTES = 1 << 20;
/** VFIO_MIGRATION_PRE_COPY. */
const MIG_FLAG_PRE_COPY = 4;

export interface MigrationOptions {
  source: { device: DeviceEndpoint; vm: VmSource };
  destination: { device: DeviceEndpoint; vm: VmDestination };
  /** Downtime limit, ms. Default 300 (QEMU's downtime-limit), range 1..2_000_000. */
  maxDowntimeMs?: number;
  /** Bandwidth cap for pre-copy, bytes per second. Default unlimited. */
  maxBandwidthBytesPerSec?: number;
  /** Pre-copy iterations before switching over regardless. Default 30, range 1..1000. */
  maxIterations?: number;
  /** Device stream read size, bytes. Default 1 MiB (QEMU's VFIO buffer), range 4 KiB..16 MiB. */
  deviceChunkBytes?: number;
  /** Labels for the report. */
  path?: "in-band" | "out-of-band";
  functionLabel?: string;
  storage?: "shared" | "local";
  profile?: "tp4159" | "intel";
  /** Progress callback: each phase and each pre-copy iteration. */
  onProgress?: (e: ProgressEvent) => void;
  /**
   * Test hook called as each phase is entered; throwing aborts the migration there (rollback path).
   * Default none.
   */
  onPhase?: (phase: MigrationPhase) => void | Promise<void>;
}

export type ProgressEvent =
  | { kind: "phase"; phase: MigrationPhase; atMs: number }
  | { kind: "iteration"; iteration: IterationRecord; ramBytesTotal: number; deviceBytesTotal: number };

function fail(code: MigrationErrorCode, message: string, phase: string, cause?: unknown): never {
  throw new MigrationError(code, message, phase, cause === undefined ? undefined : { cause });
}

/** Pages set in a VFIO-layout bitmap (bit n of little-endian u64 word n/64). */
function bitmapPages(bitmap: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < bitmap.byteLength; i++) {
    let b = bitmap[i]!;
    while (b !== 0) {
      const bit = 31 - Math.clz32(b & -b);
      out.push(i * 8 + bit);
      b &= b - 1;
    }
  }
  return out;
}

export async function migrate(o: MigrationOptions): Promise<MigrationReport> {
  const maxDowntimeMs = o.maxDowntimeMs ?? 300;
  const maxIterations = o.maxIterations ?? 30;
  const chunk = o.deviceChunkBytes ?? 1 << 20;
  if (!(maxDowntimeMs >= 1) || !(maxIterations >= 1) || chunk < 4096) {
    throw new MigrationError(
      "invalid-argument",
      "maxDowntimeMs, maxIterations and deviceChunkBytes must be positive",
      "setup",
    );
  }
  const src = o.source;
  const dst = o.destination;
  const clock = new PhaseClock();
  const iterations: IterationRecord[] = [];
  const ramBytes = src.vm.ramBytes;
  const pageCount = ramBytes / PAGE_BYTES;
  let ramBytesTotal = 0;
  let deviceBytesTotal = 0;
  let stateBytes = 0;
  let converged = false;
  let vcpusPaused = false;
  let destinationRunning = false;
  let deviceDowntimeStart = 0;
  let deviceDowntimeMs = 0;
  let downtimeStart = 0;
  let downtimeMs = 0;
  const downtime = {
    vcpuPauseMs: 0,
    deviceStopMs: 0,
    deviceDataMs: 0,
    finalRamMs: 0,
    deviceResumeMs: 0,
    vcpuStartMs: 0,
  };
  const bitmap = new Uint8Array(Math.ceil(pageCount / 64) * 8);

  const enter = async (p: MigrationPhase) => {
    clock.enter(p);
    o.onProgress?.({ kind: "phase", phase: p, atMs: round(clock.now()) });
    await o.onPhase?.(p);
  };

  // One staging buffer for a batch of pages (`page()` is valid only until the next call; the
  // destination copies before `writePages` returns, so the buffer is reused batch after batch).
  const staging = new Uint8Array(SEND_BATCH_PAGES * PAGE_BYTES);
  const stagingPages = Array.from({ length: SEND_BATCH_PAGES }, (_, i) =>
    staging.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES),
  );
  const sendPages = async (pages: Iterable<number> | "all"): Promise<number> => {
    const transfer = src.vm.transferPages;
    if (transfer !== undefined) {
      const list = pages === "all" ? "all" : Array.from(pages);
      const n = list === "all" ? pageCount : list.length;
      if (n > 0) await transfer.call(src.vm, list);
      ramBytesTotal += n * PAGE_BYTES;
      return n;
    }
    const page = src.vm.page;
    const write = dst.vm.writePages;
    if (page === undefined || write === undefined)
      throw new MigrationError(
        "invalid-argument",
        "the VM endpoints move no RAM (page/writePages or transferPages)",
        "setup",
      );
    const list: number[] = [];
    let n = 0;
    for (const p of pages === "all" ? Array.from({ length: pageCount }, (_, k) => k) : pages) {
      stagingPages[list.length]!.set(page.call(src.vm, p));
      list.push(p);
      if (list.length === SEND_BATCH_PAGES) {
        await write.call(dst.vm, list, stagingPages);
        n += list.length;
        list.length = 0;
      }
    }
    if (list.length > 0) await write.call(dst.vm, list, stagingPages.slice(0, list.length));
    n += list.length;
    ramBytesTotal += n * PAGE_BYTES;
    return n;
  };

  /** CPU-dirty ∪ device-dirty pages since the last call. */
  const collectDirty = async (
    phase: string,
  ): Promise<{ pages: Set<number>; cpu: number; device: number }> => {
    const cpu = await src.vm.collectDirty();
    bitmap.fill(0);
    const r = await src.device.dmaLoggingReport(0n, BigInt(ramBytes), BigInt(PAGE_BYTES), bitmap);
    if (!r.ok) fail("dirty-tracking", `DMA logging report: errno ${r.errno}`, phase);
    const dev = bitmapPages(bitmap);
    const pages = new Set<number>(cpu);
    for (const p of dev) pages.add(p);
    return { pages, cpu: cpu.length, device: dev.length };
  };

  /** Moves device stream bytes until the source says "no more now" (ENOMSG) or the end (0 bytes). */
  const pumpDevice = async (phase: string, untilEnd: boolean): Promise<number> => {
    let moved = 0;
    for (;;) {
      const r = await src.device.readData(chunk);
      if (!r.ok) {
        if (!untilEnd && r.errno === 42 /* ENOMSG: temporary end of pre-copy data */) return moved;
        fail("device-data", `source read: errno ${r.errno}`, phase);
      }
      if (r.bytes.byteLength === 0) return moved;
      const w = await dst.device.writeData(r.bytes);
      if (!w.ok) fail("device-data", `destination write: errno ${w.errno}`, phase);
      moved += r.bytes.byteLength;
      deviceBytesTotal += r.bytes.byteLength;
      if (!untilEnd && moved >= 8 * chunk) return moved; // let RAM catch up; the loop comes back
    }
  };

  const throttle = async (bytes: number, startedMs: number) => {
    const cap = o.maxBandwidthBytesPerSec;
    if (cap === undefined || cap <= 0) return;
    const wantMs = (bytes / cap) * 1000;
    const spent = clock.now() - startedMs;
    if (wantMs > spent) await new Promise((r) => setTimeout(r, wantMs - spent));
  };

  let loggingOn = false;
  try {
    await enter("setup");
    const prep = await dst.device.setState(MigState.RESUMING);
    if (!prep.ok) fail("destination-device", `to RESUMING: errno ${prep.errno}`, "setup");
    await enter("destination-prepared");

    await src.vm.startDirtyLog();
    loggingOn = true;
    const dl = await src.device.dmaLoggingStart([{ iova: 0n, length: BigInt(ramBytes) }], BigInt(PAGE_BYTES));
    if (!dl.ok) fail("dirty-tracking", `DMA logging start: errno ${dl.errno}`, "destination-prepared");
    // Device pre-copy only when the device offers it (the Intel profile does not: RAM pre-copy only).
    const devicePrecopy = ((await src.device.migrationFlags()) & MIG_FLAG_PRE_COPY) !== 0;
    if (devicePrecopy) {
      const pc = await src.device.setState(MigState.PRE_COPY);
      if (!pc.ok) fail("source-device", `to PRE_COPY: errno ${pc.errno}`, "destination-prepared");
    }
    await enter("precopy");

    // Pre-copy: the first iteration sends all of RAM.
    let allPages = true;
    /** Bytes per ms used to predict the downtime. */
    let bandwidthEstimate = 0;
    for (let i = 0; i < maxIterations; i++) {
      const t0 = clock.now();
      let pages: Iterable<number> | "all";
      let cpu = 0;
      let device = 0;
      if (allPages) {
        await src.vm.collectDirty(); // everything goes now; start counting from here
        bitmap.fill(0);
        await src.device.dmaLoggingReport(0n, BigInt(ramBytes), BigInt(PAGE_BYTES), bitmap);
        pages = "all";
        allPages = false;
      } else {
        const d = await collectDirty("precopy");
        pages = d.pages;
        cpu = d.cpu;
        device = d.device;
      }
      const sent = await sendPages(pages);
      const devMoved = devicePrecopy ? await pumpDevice("precopy", false) : 0;
      await throttle(sent * PAGE_BYTES + devMoved, t0);
      const moved = sent * PAGE_BYTES + devMoved;
      const dur = Math.max(clock.now() - t0, 0.001);
      const bandwidth = moved / dur;
      if (moved >= BANDWIDTH_SAMPLE_BYTES || bandwidth > bandwidthEstimate) bandwidthEstimate = bandwidth;
      // Let a VM on this thread run (a VM in another process runs all along).
      await new Promise<void>((r) => setImmediate(r));
      const info = devicePrecopy ? await src.device.precopyInfo() : undefined;
      const size = await src.device.dataSize();
      const stopCopy = size.ok ? Number(size.stopCopyLength) : 100 * 1024 ** 3;
      const pendingRam = (await src.vm.dirtyPageCount()) * PAGE_BYTES + device * PAGE_BYTES;
      const capPerMs =
        o.maxBandwidthBytesPerSec !== undefined ? o.maxBandwidthBytesPerSec / 1000 : Number.POSITIVE_INFINITY;
      const effBandwidth = Math.max(1, Math.min(bandwidthEstimate, capPerMs));
      const expected = (pendingRam + stopCopy) / effBandwidth;
      const rec: IterationRecord = {
        index: i,
        startMs: round(t0),
        durationMs: round(dur),
        ramPages: sent,
        ramBytes: sent * PAGE_BYTES,
        cpuDirtyPages: cpu,
        deviceDirtyPages: device,
        deviceBytes: devMoved,
        dirtyRatePagesPerSec: i === 0 ? 0 : round(((cpu + device) / dur) * 1000, 1),
        bandwidthBytesPerMs: round(bandwidth, 1),
        expectedDowntimeMs: round(expected),
      };
      iterations.push(rec);
      o.onProgress?.({ kind: "iteration", iteration: rec, ramBytesTotal, deviceBytesTotal });
      const initialDone = info === undefined || !info.ok || info.initialBytes === 0n;
      if (initialDone && expected <= maxDowntimeMs && i >= 1) {
        converged = true;
        break;
      }
    }
    await enter("converged");

    // ---- downtime
    downtimeStart = clock.now();
    await src.vm.pauseVcpus();
    vcpusPaused = true;
    downtime.vcpuPauseMs = clock.now() - downtimeStart;
    await enter("vcpus-paused");

    // The RAM dirtied so far (CPU, and device DMA until now) goes while the device still runs.
    const tr0 = clock.now();
    const early = await collectDirty("vcpus-paused");
    await sendPages(early.pages);
    downtime.finalRamMs = clock.now() - tr0;

    deviceDowntimeStart = clock.now();
    const sc = await src.device.setState(MigState.STOP_COPY);
    if (!sc.ok) fail("source-device", `to STOP_COPY: errno ${sc.errno}`, "vcpus-paused");
    downtime.deviceStopMs = clock.now() - deviceDowntimeStart;
    await enter("device-stopped");

    const td = clock.now();
    const before = deviceBytesTotal;
    await pumpDevice("device-stopped", true);
    stateBytes = deviceBytesTotal - before;
    downtime.deviceDataMs = clock.now() - td;
    await enter("device-data-sent");

    const tr = clock.now();
    const last = await collectDirty("device-data-sent");
    await sendPages(last.pages);
    downtime.finalRamMs += clock.now() - tr;
    await enter("final-ram-sent");

    const tres = clock.now();
    const run = await dst.device.setState(MigState.RUNNING);
    if (!run.ok) fail("destination-device", `to RUNNING: errno ${run.errno}`, "final-ram-sent");
    destinationRunning = true;
    downtime.deviceResumeMs = clock.now() - tres;
    deviceDowntimeMs = clock.now() - deviceDowntimeStart;
    await enter("destination-running");

    const tv = clock.now();
    await dst.vm.start();
    vcpusPaused = false;
    downtime.vcpuStartMs = clock.now() - tv;
    downtimeMs = clock.now() - downtimeStart;
    await enter("vcpus-running");

    // The source keeps its function stopped (never running on both sides). The VM already runs on
    // the destination, so a failure here is a warning, not a failed migration.
    const warnings: string[] = [];
    const bestEffort = async (what: string, step: () => unknown) => {
      try {
        const r = (await step()) as { ok?: boolean; errno?: number } | undefined;
        if (r !== undefined && r !== null && r.ok === false) warnings.push(`${what}: errno ${r.errno}`);
      } catch (e) {
        warnings.push(`${what}: ${(e as Error).message}`);
      }
    };
    await bestEffort("source CPU dirty log off", () => src.vm.stopDirtyLog());
    loggingOn = false;
    await bestEffort("source DMA logging stop", () => src.device.dmaLoggingStop());
    await bestEffort("source device to STOP", () => src.device.setState(MigState.STOP));
    await enter("source-cleaned");
    await enter("completed");
    const done = buildReport("completed");
    if (warnings.length > 0) done.warnings = warnings;
    return done;
  } catch (e) {
    const err = MigrationError.from(e, clock.current);
    if (destinationRunning) {
      // Past the point of no return: the VM must run on the destination.
      if (vcpusPaused) await dst.vm.start().catch(() => {});
      throw err;
    }
    await rollback();
    clock.enter("rolled-back");
    const report = buildReport("rolled-back");
    report.error = { code: err.code, phase: err.phase, message: err.message };
    return report;
  }

  async function rollback(): Promise<void> {
    // Source device back to RUNNING (from PRE_COPY or STOP_COPY); reset if the SET fails.
    const s = await src.device
      .setState(MigState.RUNNING)
      .catch(() => ({ ok: false as const, errno: 5, reachedState: 0 }));
    if (!s.ok) await src.device.reset().catch(() => {});
    if (loggingOn) {
      await Promise.resolve(src.vm.stopDirtyLog()).catch(() => {});
      await src.device.dmaLoggingStop().catch(() => {});
    }
    if (vcpusPaused) await Promise.resolve(src.vm.resumeVcpus()).catch(() => {});
    await dst.device.reset().catch(() => {});
    await dst.vm.discard().catch(() => {});
  }

  function buildReport(result: "completed" | "rolled-back"): MigrationReport {
    return {
      path: o.path ?? "in-band",
      result,
      functionLabel: o.functionLabel ?? "vf",
      storage: o.storage ?? "shared",
      profile: o.profile ?? "tp4159",
      maxDowntimeMs,
      converged,
      totalMs: round(clock.now()),
      downtimeMs: round(downtimeMs),
      deviceDowntimeMs: round(deviceDowntimeMs),
      downtime: {
        vcpuPauseMs: round(downtime.vcpuPauseMs),
        deviceStopMs: round(downtime.deviceStopMs),
        deviceDataMs: round(downtime.deviceDataMs),
        finalRamMs: round(downtime.finalRamMs),
        deviceResumeMs: round(downtime.deviceResumeMs),
        vcpuStartMs: round(downtime.vcpuStartMs),
      },
      stateBytes,
      precopyIterations: iterations.length,
      bytesTransferred: ramBytesTotal + deviceBytesTotal,
      ramBytesTransferred: ramBytesTotal,
      deviceBytesTransferred: deviceBytesTotal,
      namespaceBytesTransferred: Math.max(0, deviceBytesTotal - stateBytes),
      iterations,
      phases: clock.phases,
    };
  }
}
