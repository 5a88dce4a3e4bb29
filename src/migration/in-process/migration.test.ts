/**
 * In-process live migration under load: a VM runs a verified mixed workload on VF1 of host A; the
 * orchestrator migrates the function (in band: VFIO v2 portals → NVMe variant driver → TP4159 admin
 * commands on each host's PF) and the VM's RAM to host B, and the workload carries on there.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Workload } from "../../vmm/workload.ts";
import { TwoHosts } from "./two-hosts.ts";

async function runMigration(storage: "shared" | "local", profile: "tp4159" | "intel") {
  const t = await TwoHosts.start({
    storage,
    profile,
    namespaceBytes: 8 << 20,
    vmRamBytes: 16 << 20,
    ioQueuePairs: 2,
  });
  try {
    const w = new Workload(t.vm.driver, t.vm.memory, {
      pattern: "random",
      readPercent: 50,
      blockBytes: 4096,
      queueDepth: 8,
      queues: 2,
      seed: 7,
    });
    const running = w.start();
    await new Promise((r) => setTimeout(r, 50));
    const report = await t.migrate({ maxDowntimeMs: 50 });
    assert.equal(report.result, "completed", JSON.stringify(report.error));
    assert.equal(t.current, "b");
    await new Promise((r) => setTimeout(r, 50));
    await w.stop();
    await running;
    const v = await w.verify();
    assert.equal(v.verified, true, JSON.stringify(v.failures?.slice(0, 3)));
    assert.equal(v.lostWrites, 0);
    assert.equal(v.badReads, 0);
    assert.equal(v.duplicateCompletions, 0);
    assert.equal(v.missingCompletions, 0);
    assert.ok(v.ops > 0);
    return report;
  } finally {
    await t.stop();
  }
}

test("in-band migration, shared storage, TP4159: zero loss", async () => {
  const r = await runMigration("shared", "tp4159");
  assert.ok(r.stateBytes > 0);
  assert.ok(r.downtimeMs > 0);
});

test("in-band migration, local storage, TP4159: namespace data moves, zero loss", async () => {
  const r = await runMigration("local", "tp4159");
  assert.ok(r.namespaceBytesTransferred >= 8 << 20, `namespace bytes ${r.namespaceBytesTransferred}`);
});

test("in-band migration, shared storage, Intel profile: zero loss", async () => {
  await runMigration("shared", "intel");
});
