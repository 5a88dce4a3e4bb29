/**
 * A tiny control benchmark run: one migration per path, 1 and 2 functions migrating at once. Checks
 * the result's shape, that every workload verified and that the figures are positive (no timing
 * thresholds: the figures themselves are the benchmark's output).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runControlBench } from "./control-bench.ts";

test("control bench: both paths and concurrent counts measured, every workload verified", async () => {
  const seen: string[] = [];
  const r = await runControlBench({
    migrationsPerPath: 1,
    vmRamBytes: 4 << 20,
    namespaceBytes: 4 << 20,
    workingSetBytes: 1 << 20,
    queueDepth: 8,
    loadMs: 10,
    concurrent: {
      counts: [1, 2],
      rounds: 1,
      onlineVfs: 4,
      vmRamBytes: 4 << 20,
      namespaceBytes: 2 << 20,
      loadMs: 10,
    },
    onMigration: (label) => seen.push(label),
  });
  assert.equal(r.verified, true);
  for (const path of ["in-band", "out-of-band"] as const) {
    assert.equal(r.samples[path], 1);
    assert.ok(r.downtimeMsP50[path] > 0, `${path} downtime`);
    assert.ok(r.downtimeMsP90[path] >= r.downtimeMsP50[path]);
    assert.ok(r.deviceDowntimeMsP50[path] > 0, `${path} device downtime`);
    assert.ok(
      r.deviceDowntimeMsP50[path] <= r.downtimeMsP50[path],
      `${path}: device downtime within the downtime`,
    );
    assert.ok(r.totalMsP50[path] >= r.downtimeMsP50[path]);
    assert.ok(r.stateBytes[path] > 0);
  }
  assert.deepEqual(Object.keys(r.concurrent ?? {}), ["1", "2"]);
  for (const [key, c] of Object.entries(r.concurrent ?? {})) {
    assert.equal(c.functions, Number(key));
    assert.equal(c.samples, Number(key));
    assert.equal(c.verified, true, `k=${key}`);
    assert.ok(c.totalMs > 0 && c.worstDowntimeMs > 0 && c.worstDeviceDowntimeMs > 0 && c.p50DowntimeMs > 0);
    assert.ok(c.worstDowntimeMs >= c.p50DowntimeMs);
    assert.ok(c.totalMs >= c.p50MigrationMs);
  }
  // 2 path migrations + 1 + 2 concurrent ones, each reported once.
  assert.equal(seen.length, 5);
  assert.deepEqual(JSON.parse(JSON.stringify(r)).downtimeMsP50, r.downtimeMsP50);
});

test("control bench: options out of range are refused before anything runs", async () => {
  await assert.rejects(runControlBench({ migrationsPerPath: 0 }), RangeError);
  await assert.rejects(runControlBench({ concurrent: { counts: [] } }), RangeError);
  await assert.rejects(runControlBench({ concurrent: { counts: [20], onlineVfs: 16 } }), RangeError);
});
