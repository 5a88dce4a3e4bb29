import assert from "node:assert/strict";
import { test } from "node:test";
import { SubsystemHost } from "../host/subsystem-host.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { createGuestMemory } from "./guest-memory.ts";
import { InProcessPort } from "./in-process-port.ts";
import { LatencyHistogram } from "./latency-histogram.ts";
import { GuestNvmeDriver } from "./nvme-driver.ts";
import { Xorshift32 } from "./prng.ts";
import { Workload, WorkloadError, type WorkloadOptions } from "./workload.ts";

async function rig(lbaBytes: 512 | 4096 = 512) {
  const host = new SubsystemHost({
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes, lbaCount: 1 << 13 }) }],
    secondaryCount: 0,
    pfIoQueuePairs: 4,
  });
  const mem = createGuestMemory(16 << 20);
  const driver = new GuestNvmeDriver(new InProcessPort(host.pf, mem), mem, {
    ioQueues: 2,
    ioQueueEntries: 32,
  });
  await driver.init();
  return { mem, driver };
}

const base: WorkloadOptions = {
  pattern: "random",
  readPercent: 50,
  blockBytes: 4096,
  queueDepth: 4,
  queues: 1,
  lbaRange: [0, 1024],
  ops: 200,
  seed: 1,
};

test("xorshift32 is deterministic per seed and spreads over its range", () => {
  const a = new Xorshift32(42);
  const b = new Xorshift32(42);
  const c = new Xorshift32(43);
  const sa = Array.from({ length: 8 }, () => a.next());
  assert.deepEqual(
    sa,
    Array.from({ length: 8 }, () => b.next()),
  );
  assert.notDeepEqual(
    sa,
    Array.from({ length: 8 }, () => c.next()),
  );
  const r = new Xorshift32(0);
  const hits = new Array(10).fill(0);
  for (let i = 0; i < 10000; i++) hits[r.nextBelow(10)]++;
  for (const h of hits) assert.ok(h > 800 && h < 1200, `bucket count ${h}`);
});

test("latency histogram: power-of-two buckets and percentiles", () => {
  const h = new LatencyHistogram();
  for (let i = 0; i < 98; i++) h.record(100); // bucket 6: [64, 128)
  h.record(5000); // bucket 12
  h.record(0.2); // bucket 0
  const s = h.summary();
  assert.equal(s.count, 100);
  assert.equal(s.buckets[6], 98);
  assert.equal(s.buckets[12], 1);
  assert.equal(s.buckets[0], 1);
  assert.equal(s.p50Us, 128);
  assert.equal(s.p99Us, 128);
  assert.equal(s.maxUs, 5000);
});

test("options are validated against the driver and namespace", async () => {
  const { driver, mem } = await rig();
  const bad: Array<Partial<WorkloadOptions>> = [
    { blockBytes: 1000 },
    { blockBytes: 1 << 20 },
    { queues: 3 },
    { queueDepth: 32 },
    { queueDepth: 0 },
    { lbaRange: [8000, 1000] },
    { lbaRange: [0, 4] },
    { readPercent: 101 },
    { nsid: 2 },
  ];
  for (const b of bad) {
    assert.throws(() => new Workload(driver, mem, { ...base, ...b }), WorkloadError, JSON.stringify(b));
  }
  await driver.shutdown();
  assert.throws(() => new Workload(driver, mem, base), { code: "not-ready" });
});

test("same seed, queue depth 1: the same sequence of reads and writes; ops: 0 ends at once", async () => {
  const runs: Array<[number, number]> = [];
  for (let i = 0; i < 2; i++) {
    const { driver, mem } = await rig(); // a fresh namespace each time
    const w = new Workload(driver, mem, { ...base, queueDepth: 1, readPercent: 40, seed: 99 });
    const s = await w.start();
    runs.push([s.reads, s.writes]);
    assert.equal((await w.verify()).verified, true);
    w.release();
    await driver.shutdown();
  }
  assert.deepEqual(runs[0], runs[1]);
  const { driver, mem } = await rig();
  const empty = new Workload(driver, mem, { ...base, ops: 0 });
  const s = await empty.start();
  assert.equal(s.ops, 0);
  const r = await empty.verify();
  assert.equal(r.verified, true);
  assert.equal(r.finalBlocksChecked, 0);
  await driver.shutdown();
});

test("a second run over the same LBAs continues the first run's verifier", async () => {
  const { driver, mem } = await rig();
  const first = new Workload(driver, mem, { ...base, queues: 2 });
  await first.start();
  first.release();
  // A fresh verifier would see the first run's blocks where it expects zeroes: that is a failure.
  const fresh = new Workload(driver, mem, { ...base, readPercent: 100, seed: 2 });
  await fresh.start();
  assert.equal((await fresh.verify()).badReads > 0, true);
  fresh.release();
  const second = new Workload(driver, mem, { ...base, seed: 3, verifier: first.verifier });
  await second.start();
  const r = await second.verify();
  assert.equal(r.verified, true, JSON.stringify(r.failures));
  assert.equal(r.ops, 400, "the report covers both runs");
  await driver.shutdown();
});

test("4 KiB-LBA namespace, write-only then read-only phases verify", async () => {
  const { driver, mem } = await rig(4096);
  const w = new Workload(driver, mem, {
    ...base,
    readPercent: 0,
    queues: 2,
    queueDepth: 8,
    blockBytes: 8192,
    ops: 400,
  });
  const s = await w.start();
  assert.equal(s.writes, 400);
  assert.equal(s.bytesWritten, 400 * 8192);
  const r = await w.verify();
  assert.equal(r.verified, true, JSON.stringify(r.failures));
  assert.ok(r.finalBlocksChecked > 0);
  await driver.shutdown();
});
