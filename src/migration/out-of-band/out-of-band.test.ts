/**
 * Out-of-band live migration under verified load: the orchestrator drives both hosts' agents over real
 * gRPC (UNIX sockets), there and back, with shared and with local storage; zero loss.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Workload } from "../../vmm/workload.ts";
import { TwoHosts } from "../in-process/two-hosts.ts";
import { TwoHostAgents } from "./agents.ts";

test("out-of-band migration with local storage is refused (known race, see agent-backend.ts), nothing changes", async () => {
  const t = await TwoHosts.start({
    storage: "local",
    namespaceBytes: 1 << 20,
    vmRamBytes: 8 << 20,
    ioQueuePairs: 2,
  });
  const agents = await TwoHostAgents.start(t);
  try {
    await assert.rejects(() => agents.migrate({ maxDowntimeMs: 50 }), /local storage is disabled/);
    assert.equal(t.current, "a");
    // The VM keeps working on the source.
    const buf = t.vm.memory.allocPages(1);
    const st = await new Promise<number>((res) => t.vm.driver.submitRead(1, 1, 0, 8, buf, (s) => res(s)));
    assert.equal(st, 0);
  } finally {
    await agents.stop();
    await t.stop();
  }
});

for (const storage of ["shared"] as const) {
  test(`out-of-band migration there and back, ${storage} storage: zero loss`, async () => {
    const t = await TwoHosts.start({
      storage,
      namespaceBytes: 2 << 20,
      vmRamBytes: 8 << 20,
      ioQueuePairs: 2,
    });
    const agents = await TwoHostAgents.start(t);
    try {
      const w = new Workload(t.vm.driver, t.vm.memory, {
        pattern: "random",
        readPercent: 50,
        blockBytes: 4096,
        queueDepth: 8,
        queues: 2,
        seed: 5,
      });
      const running = w.start();
      await new Promise((r) => setTimeout(r, 30));
      for (let i = 0; i < 2; i++) {
        const r = await agents.migrate({ maxDowntimeMs: 50, maxIterations: 5 });
        assert.equal(r.result, "completed", JSON.stringify(r.error));
        assert.equal(r.path, "out-of-band");
        assert.ok(r.stateBytes > 0);
        await new Promise((res) => setTimeout(res, 20));
      }
      assert.equal(t.current, "a");
      await w.stop();
      await running;
      const v = await w.verify();
      assert.equal(v.verified, true, JSON.stringify(v.failures?.slice(0, 2)));
      assert.equal(v.lostWrites + v.badReads + v.duplicateCompletions + v.missingCompletions, 0);
    } finally {
      await agents.stop();
      await t.stop();
    }
  });
}
