import assert from "node:assert/strict";
import { test } from "node:test";
import { percentile, runMigrationBench } from "./migration-bench.ts";

test("runMigrationBench (tiny): every key has positive figures, local storage moves the namespace", async () => {
  const seen: string[] = [];
  const r = await runMigrationBench({
    queuePairCounts: [1, 4],
    migrationsPerKey: 2,
    warmupMigrations: 0,
    queueDepth: 4,
    loadMs: 5,
    vmRamBytes: 8 << 20,
    namespaceBytes: 4 << 20,
    workingSetBytes: 1 << 20,
    localStorage: { namespaceBytes: 2 << 20, workingSetBytes: 256 << 10 },
    onMigration: (key, i) => seen.push(`${key}#${i}`),
  });
  assert.deepEqual(seen, ["1#0", "4#0", "1#1", "4#1"], "the counts take turns");
  for (const key of ["1", "4"]) {
    for (const figure of [
      r.deviceDowntimeMsP50,
      r.deviceDowntimeMsP90,
      r.deviceDowntimeMsMax,
      r.downtimeMsP50,
      r.downtimeMsP90,
      r.downtimeMsMax,
      r.stateBytes,
    ]) {
      const v = figure[key];
      assert.ok(typeof v === "number" && Number.isFinite(v) && v > 0, `${key}: ${v}`);
    }
    assert.equal(r.samples[key], 2);
    assert.ok(r.deviceDowntimeMsP50[key]! <= r.deviceDowntimeMsMax[key]!);
    // The device is stopped within the vCPU downtime of each migration, so also in order statistics.
    assert.ok(r.deviceDowntimeMsP50[key]! <= r.downtimeMsP50[key]!);
    const parts = r.downtimeBreakdownMsP50[key]!;
    assert.ok(parts.deviceStopMs > 0 && parts.deviceResumeMs > 0, JSON.stringify(parts));
    const device = r.deviceDowntimeBreakdownMsP50[key]!;
    assert.equal(device.deviceStopMs, parts.deviceStopMs);
    assert.ok(device.lastRamMs >= 0);
    assert.ok(r.notes.some((n) => n.startsWith(`Where the time goes at ${key} queue pair`)));
  }
  // More queue pairs, more controller state (24 bytes per SQ and per CQ in the NVMe state).
  assert.ok(r.stateBytes["4"]! > r.stateBytes["1"]!);
  assert.equal(r.deviceDowntimeGrowth.fromKey, "1");
  assert.equal(r.deviceDowntimeGrowth.toKey, "4");
  assert.ok(r.deviceDowntimeGrowth.ratio > 0);
  assert.equal(r.targets.met.deviceDowntimeAt4Qp, r.deviceDowntimeMsP50["4"]! <= 5);
  assert.equal(r.targets.met.growth1To64, undefined, "64 not measured");
  const local = r.localStorage;
  assert.ok(local !== undefined);
  assert.equal(local.namespaceBytes, 2 << 20);
  assert.ok(local.bytesCopied >= local.namespaceBytes, `copied ${local.bytesCopied}`);
  assert.ok(local.iterations >= 1);
  assert.ok(local.stopCopyBytes > 0 && local.deviceDowntimeMs > 0);
  assert.equal(r.verified, true);
  assert.ok(JSON.parse(JSON.stringify(r)), "the result is plain JSON");
});

test("runMigrationBench: options out of range are refused", async () => {
  await assert.rejects(runMigrationBench({ queuePairCounts: [65] }), /queuePairCounts/);
  await assert.rejects(runMigrationBench({ migrationsPerKey: 0 }), /migrationsPerKey/);
  await assert.rejects(runMigrationBench({ warmupMigrations: -1 }), /warmupMigrations/);
  await assert.rejects(runMigrationBench({ queueDepth: 0 }), /queueDepth/);
});

test("percentile: nearest rank", () => {
  assert.equal(percentile([5, 1, 3], 50), 3);
  assert.equal(percentile([1, 2, 3, 4], 50), 2);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7], 90), 7);
  assert.equal(percentile([9], 90), 9);
});
