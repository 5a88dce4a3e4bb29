/**
 * Rollback: a failure injected at each phase before the destination runs leaves the function running
 * on the source (the workload keeps going there, zero loss), the destination reset, and a later
 * migration still succeeds — in band and out of band.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Workload } from "../../vmm/workload.ts";
import { TwoHostAgents } from "../out-of-band/agents.ts";
import type { MigrationPhase } from "../report.ts";
import { TwoHosts } from "./two-hosts.ts";

const FAIL_AT: MigrationPhase[] = [
  "setup",
  "destination-prepared",
  "precopy",
  "converged",
  "vcpus-paused",
  "device-stopped",
  "device-data-sent",
  "final-ram-sent",
];

for (const path of ["in-band", "out-of-band"] as const) {
  test(`${path}: failure at each of ${FAIL_AT.length} phases rolls back to the source with zero loss`, async () => {
    const t = await TwoHosts.start({
      storage: "shared",
      namespaceBytes: 1 << 20,
      vmRamBytes: 8 << 20,
      ioQueuePairs: 2,
    });
    const agents = path === "out-of-band" ? await TwoHostAgents.start(t) : undefined;
    const run = (o: Parameters<TwoHosts["migrate"]>[0]) =>
      agents !== undefined ? agents.migrate(o) : t.migrate(o);
    try {
      let w: Workload | undefined;
      for (const phase of FAIL_AT) {
        w = new Workload(t.vm.driver, t.vm.memory, {
          pattern: "random",
          readPercent: 50,
          blockBytes: 4096,
          queueDepth: 8,
          queues: 2,
          seed: FAIL_AT.indexOf(phase) + 1,
          ...(w?.verifier !== undefined ? { verifier: w.verifier } : {}),
        });
        const running = w.start();
        await new Promise((r) => setTimeout(r, 10));
        const r = await run({
          maxDowntimeMs: 50,
          maxIterations: 3,
          onPhase: (p) => {
            if (p === phase) throw new Error(`injected failure at ${p}`);
          },
        });
        assert.equal(r.result, "rolled-back", `failure at ${phase}`);
        assert.equal(r.error?.phase, phase);
        assert.equal(t.current, "a", "the VM stays on the source");
        // The workload keeps running on the source after the rollback.
        const before = w.stats().ops;
        await new Promise((res) => setTimeout(res, 30));
        assert.ok(w.stats().ops > before, `I/O continues on the source after a failure at ${phase}`);
        await w.stop();
        await running;
        const v = await w.verify();
        assert.equal(
          v.verified,
          true,
          `after failure at ${phase}: ${JSON.stringify(v.failures?.slice(0, 2))}`,
        );
        w.release();
      }
      // A clean migration still works afterwards.
      const ok = await run({ maxDowntimeMs: 50 });
      assert.equal(ok.result, "completed", JSON.stringify(ok.error));
      assert.equal(t.current, "b");
    } finally {
      await agents?.stop();
      await t.stop();
    }
  });
}
