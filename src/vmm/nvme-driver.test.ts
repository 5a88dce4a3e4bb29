/**
 * End-to-end: the guest driver and the verified workload against the real controller (an in-process
 * `NvmeFunction` of a `SubsystemHost`), through `InProcessPort` — MSI-X through the function's table,
 * guest RAM through the function's DMA map.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../host/subsystem-host.ts";
import { CSTS, Reg, ShutdownStatus } from "../nvme/registers.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import type { FunctionPort } from "./function-port.ts";
import { createGuestMemory, type GuestMemory } from "./guest-memory.ts";
import { InProcessPort } from "./in-process-port.ts";
import { GuestNvmeDriver, type GuestNvmeDriverOptions, HOST_ABORTED_STATUS } from "./nvme-driver.ts";
import { Workload, type WorkloadOptions } from "./workload.ts";

const LBA_COUNT = 1 << 14; // 8 MiB of 512-byte blocks

interface Rig {
  host: SubsystemHost;
  mem: GuestMemory;
  port: InProcessPort;
  driver: GuestNvmeDriver;
}

function makeRig(options: GuestNvmeDriverOptions = {}, wrap?: (p: FunctionPort) => FunctionPort): Rig {
  const host = new SubsystemHost({
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount: LBA_COUNT }) }],
    secondaryCount: 0,
    pfIoQueuePairs: 8,
  });
  const mem = createGuestMemory(32 << 20);
  const port = new InProcessPort(host.pf, mem);
  const driver = new GuestNvmeDriver(wrap === undefined ? port : wrap(port), mem, {
    ioQueues: 2,
    ...options,
  });
  return { host, mem, port, driver };
}

async function bringUp(options: GuestNvmeDriverOptions = {}): Promise<Rig> {
  const rig = makeRig(options);
  await rig.driver.init();
  return rig;
}

const baseWorkload: WorkloadOptions = {
  pattern: "random",
  readPercent: 50,
  blockBytes: 4096,
  queueDepth: 16,
  queues: 2,
  lbaRange: [0, 2048],
  ops: 3000,
  seed: 7,
};

test("init brings the controller up like Linux: identify, namespaces, queues, AER, MSI-X", async () => {
  const { driver, port } = await bringUp();
  assert.equal(driver.ready, true);
  assert.equal(driver.ioQueueCount, 2);
  assert.equal(driver.ioQueueDepth(1), 127);
  assert.ok(driver.identify !== undefined && driver.identify.sn.length > 0);
  const ns = driver.namespaces.get(1);
  assert.ok(ns !== undefined);
  assert.equal(ns.lbaBytes, 512);
  assert.equal(ns.nsze, LBA_COUNT);
  assert.equal(driver.asyncEventRequestsOutstanding, 1);
  assert.ok(port.interruptsReceived > 0, "admin completions arrived through MSI-X");
  assert.equal((await port.read32(0, Reg.CSTS)) & CSTS.RDY, CSTS.RDY);
  await driver.shutdown();
  const csts = await port.read32(0, Reg.CSTS);
  assert.equal((csts & CSTS.SHST_MASK) >>> CSTS.SHST_SHIFT, ShutdownStatus.Complete);
  assert.equal(driver.ready, false);
  assert.equal(driver.asyncEventRequestsOutstanding, 0);
  assert.throws(() => driver.submitFlush(9, 1, () => {}), { code: "invalid-argument" });
  port.detach();
});

for (const mode of ["interrupt", "polling"] as const) {
  test(`verified random workload, ${mode} mode`, async () => {
    const { driver, mem, port } = await bringUp({ completionMode: mode });
    const interruptsBefore = port.interruptsReceived;
    const w = new Workload(driver, mem, baseWorkload);
    const stats = await w.start();
    assert.equal(stats.ops, 3000);
    assert.equal(stats.reads + stats.writes, 3000);
    assert.ok(stats.reads > 1000 && stats.writes > 1000);
    assert.equal(stats.errors, 0);
    assert.equal(stats.latency.count, 3000);
    const report = await w.verify();
    assert.equal(report.verified, true, JSON.stringify(report.failures));
    assert.ok(report.finalBlocksChecked > 0);
    assert.equal(report.ops, 3000);
    const ds = driver.stats();
    assert.equal(ds.ioCompleted, ds.ioSubmitted);
    assert.equal(ds.duplicateCompletions, 0);
    const ioInterrupts = port.interruptsReceived - interruptsBefore;
    if (mode === "interrupt") assert.ok(ioInterrupts > 50, `${ioInterrupts} interrupts`);
    else assert.equal(ioInterrupts, 0, "IEN = 0: no interrupts for I/O queues");
    w.release();
    await driver.shutdown();
  });
}

test("sequential workload with large transfers (PRP lists) and shadow doorbells", async () => {
  const { driver, mem } = await bringUp({ shadowDoorbells: true, ioQueues: 1 });
  assert.equal(driver.shadowDoorbellsActive, true);
  const w = new Workload(driver, mem, {
    ...baseWorkload,
    pattern: "sequential",
    readPercent: 30,
    blockBytes: 64 * 1024,
    queueDepth: 8,
    queues: 1,
    lbaRange: [0, LBA_COUNT],
    ops: 600,
  });
  await w.start();
  const report = await w.verify();
  assert.equal(report.verified, true, JSON.stringify(report.failures));
  // The SQ 1 tail lives in the shadow doorbell buffer (offset 8 with CAP.DSTRD = 0).
  const dbbuf = driver.doorbellBuffers;
  assert.ok(dbbuf !== undefined);
  const entries = driver.ioQueueDepth(1) + 1;
  const ds = driver.stats();
  assert.equal(mem.readU32(dbbuf.shadowGpa + 8), ds.ioSubmitted % entries, "SQ 1 tail");
  assert.equal(mem.readU32(dbbuf.shadowGpa + 12), ds.ioCompleted % entries, "CQ 1 head");
  await driver.shutdown();
});

test("a run bounded by durationMs, then stop() and verify", async () => {
  const { driver, mem } = await bringUp();
  const w = new Workload(driver, mem, { ...baseWorkload, ops: undefined, durationMs: 150, readPercent: 70 });
  const stats = await w.start();
  assert.ok(stats.ops > 0);
  assert.ok(stats.iops > 0);
  const report = await w.verify();
  assert.equal(report.verified, true, JSON.stringify(report.failures));
  await driver.shutdown();
});

test("CPU dirty log sees the driver's and workload's writes, not the device's DMA", async () => {
  const { driver, mem } = await bringUp({ ioQueues: 1 });
  const bufferGpa = mem.allocPages(2);
  mem.startDirtyLog();
  // A read: the device writes the buffer (its own log), the CPU wrote only the SQE.
  await new Promise<void>((resolve) => driver.submitRead(1, 1, 0, 16, bufferGpa, () => resolve()));
  const dirty = new Set(mem.collectDirty());
  assert.equal(dirty.has(bufferGpa / 4096), false);
  assert.equal(dirty.has(bufferGpa / 4096 + 1), false);
  assert.ok(dirty.size >= 1, "the SQ entry page");
  // A write: the CPU filled the buffer through GuestMemory.
  mem.viewForWrite(bufferGpa, 8192).fill(0x5a);
  await new Promise<void>((resolve) => driver.submitWrite(1, 1, 0, 16, bufferGpa, () => resolve()));
  const dirty2 = new Set(mem.collectDirty());
  assert.ok(dirty2.has(bufferGpa / 4096) && dirty2.has(bufferGpa / 4096 + 1));
  mem.stopDirtyLog();
  await driver.shutdown();
});

test("resetController under load: outstanding I/O completes as host-aborted, nothing is lost or torn", async () => {
  const { driver, mem } = await bringUp();
  const w = new Workload(driver, mem, { ...baseWorkload, ops: undefined, allowIoErrors: true });
  const finished = w.start();
  await new Promise((r) => setTimeout(r, 30));
  const before = w.completedOps;
  assert.ok(w.outstandingCount > 0);
  await driver.resetController();
  assert.equal(driver.ready, true);
  assert.equal(driver.stats().resets, 1);
  assert.ok(driver.stats().hostAborted > 0);
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(w.completedOps > before, "the workload continued after the reset");
  await w.stop();
  const stats = await finished;
  assert.ok(stats.errors > 0, "host-aborted commands are reported as errors");
  const report = await w.verify();
  assert.equal(report.lostWrites, 0, JSON.stringify(report.failures));
  assert.equal(report.badReads, 0);
  assert.equal(report.duplicateCompletions, 0);
  assert.equal(report.missingCompletions, 0);
  assert.equal(report.verified, true);
  const ioErrors = report.failures.filter((f) => f.kind === "io-error");
  assert.ok(ioErrors.length > 0);
  for (const f of ioErrors) assert.equal(f.detail, `status 0x${HOST_ABORTED_STATUS.toString(16)}`);
  assert.equal(driver.asyncEventRequestsOutstanding, 1, "AER re-armed after the reset");
  await driver.shutdown();
});

test("an I/O that does not complete in ioTimeoutMs is reported and aborted", async () => {
  // A port that swallows SQ tail doorbells while `hold` is set: the command stays unfetched.
  let hold = false;
  const timeouts: number[] = [];
  const rig = makeRig(
    { ioQueues: 1, ioTimeoutMs: 40, onIoTimeout: (_qid, cid) => timeouts.push(cid) },
    (p) => ({
      configRead: (o, s) => p.configRead(o, s),
      configWrite: (o, s, v) => p.configWrite(o, s, v),
      read32: (b, o) => p.read32(b, o),
      read64: (b, o) => p.read64(b, o),
      write32: (b, o, v) => {
        if (hold && b === 0 && o === 0x1008) return;
        p.write32(b, o, v);
      },
      write64: (b, o, v) => p.write64(b, o, v),
      onInterrupt: (h) => p.onInterrupt(h),
      flush: () => p.flush(),
    }),
  );
  const driver = rig.driver;
  await driver.init();
  const buf = rig.mem.allocPages(1);
  hold = true;
  let status = -1;
  const done = new Promise<void>((resolve) => {
    const cid = driver.submitRead(1, 1, 0, 8, buf, (s) => {
      status = s;
      resolve();
    });
    assert.ok(cid >= 0);
  });
  while (timeouts.length === 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(driver.stats().ioTimeouts, 1);
  while (driver.stats().abortsSent === 0) await new Promise((r) => setTimeout(r, 5));
  // Let the command through: the next doorbell carries both tails.
  hold = false;
  driver.submitFlush(1, 1, () => {});
  await done;
  // This controller cannot abort a command it has not fetched: Abort says "not aborted" (DW0 bit 0),
  // and the command itself completes normally once its doorbell gets through.
  assert.equal(status, 0);
  assert.equal(driver.stats().abortsNotAborted, 1);
  assert.deepEqual(timeouts.length, 1);
  await driver.shutdown();
});
