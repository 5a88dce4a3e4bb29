/**
 * Smoke test of the vfio-user benchmark with tiny durations: both runs happen (VMM in a child
 * process through the socket, and in process), complete I/O without errors, with shadow doorbells.
 * No speed is asserted (figures are printed by `nvmig bench vfio-user`).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { runVfioUserBench } from "./vfio-user-bench.ts";

it("runs the socket and in-process cases and reports their figures", { timeout: 30_000 }, async () => {
  const r = await runVfioUserBench({
    durationMs: 100,
    warmupMs: 0,
    workingSetBytes: 1 << 20,
    completionModes: ["interrupt"],
  });
  assert.equal(r.cases.length, 2);
  assert.deepEqual(r.cases.map((c) => c.transport).sort(), ["in-process", "socket"]);
  for (const c of r.cases) {
    assert.ok(c.ops > 0 && c.iops > 0, `${c.name}: ops ${c.ops}`);
    assert.equal(c.errors, 0);
    assert.equal(c.shadowDoorbells, true);
    assert.ok(c.interruptsPerOp > 0, `${c.name}: interrupt mode delivers interrupts`);
  }
  assert.equal(r.randread4kQd32Iops, r.cases.find((c) => c.transport === "socket")!.iops);
  assert.equal(r.inProcessRandread4kQd32Iops, r.cases.find((c) => c.transport === "in-process")!.iops);
  assert.equal(r.vmmProcess, "child");
  assert.equal(r.verify, false);
});
