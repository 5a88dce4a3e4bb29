/**
 * Several VMs, each on its own VF, migrated at once between two hosts (in band, one PF admin queue per
 * host), there and back, under verified load on disjoint LBA ranges: zero loss for every VM.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Workload } from "../../vmm/workload.ts";
import { ManyVms } from "./many-vms.ts";

test("three VMs migrated at once there and back: each lands on the other host, zero loss", async () => {
  const t = await ManyVms.start({ vms: 3, onlineVfs: 4, namespaceBytes: 3 << 20, vmRamBytes: 4 << 20 });
  try {
    assert.equal(t.a.subsystem.subsystem.secondaries.length, 16);
    const ws = t.slots.map(
      (s, i) =>
        new Workload(s.vm.driver, s.vm.memory, {
          pattern: "random",
          readPercent: 50,
          blockBytes: 4096,
          queueDepth: 4,
          queues: 2,
          lbaRange: t.lbaRangeOf(i),
          seed: 40 + i,
        }),
    );
    const running = ws.map((w) => w.start());
    await new Promise((r) => setTimeout(r, 20));
    const there = await t.migrateMany(undefined, { maxDowntimeMs: 50, maxIterations: 5 });
    assert.deepEqual(
      there.map((r) => [r.result, r.functionLabel]),
      [
        ["completed", "vf1"],
        ["completed", "vf2"],
        ["completed", "vf3"],
      ],
    );
    assert.deepEqual(
      t.slots.map((s) => s.current),
      ["b", "b", "b"],
    );
    await new Promise((r) => setTimeout(r, 20));
    const back = await t.migrateMany([2, 0], { maxDowntimeMs: 50, maxIterations: 5 });
    assert.deepEqual(
      back.map((r) => r.result),
      ["completed", "completed"],
    );
    assert.deepEqual(
      t.slots.map((s) => s.current),
      ["a", "b", "a"],
    );
    for (const w of ws) await w.stop();
    await Promise.all(running);
    for (const [i, w] of ws.entries()) {
      const v = await w.verify();
      assert.ok(v.writes > 0, `VM ${i} wrote nothing`);
      assert.equal(v.verified, true, `VM ${i}: ${JSON.stringify(v.failures.slice(0, 2))}`);
      assert.equal(v.lostWrites + v.badReads + v.duplicateCompletions + v.missingCompletions, 0);
    }
  } finally {
    await t.stop();
  }
});

test("options out of range are refused", async () => {
  await assert.rejects(ManyVms.start({ vms: 0 }), RangeError);
  await assert.rejects(ManyVms.start({ vms: 2, onlineVfs: 1 }), RangeError);
  await assert.rejects(ManyVms.start({ vms: 2, ioQueuePairs: 9 }), RangeError);
});
