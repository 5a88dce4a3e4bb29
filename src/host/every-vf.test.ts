/**
 * A verified workload on every secondary controller at once: the PF brings all 4 VFs online through
 * Virtualization Management, a VM per VF runs verified mixed I/O on the shared namespace (each on its
 * own LBA range) at the same time, and every one verifies.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { startInProcessVm } from "../vmm/in-process-vm.ts";
import { Workload } from "../vmm/workload.ts";
import { HostNode } from "./host-node.ts";

test("verified workloads on all 4 secondary controllers at once", async () => {
  const lbaCount = 8192;
  const node = await HostNode.start({
    name: "host",
    namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount }) }],
    secondaryCount: 4,
    pfHostMemoryBytes: 8 << 20,
  });
  try {
    const vms = [];
    for (let vfn = 1; vfn <= 4; vfn++) {
      const fn = await node.bringUpVf(vfn, 2);
      vms.push(await startInProcessVm(fn, { memoryBytes: 4 << 20, driver: { ioQueues: 2 } }));
    }
    const share = lbaCount / 4;
    const loads = vms.map(
      (vm, i) =>
        new Workload(vm.driver, vm.memory, {
          pattern: "random",
          readPercent: 50,
          blockBytes: 4096,
          queueDepth: 8,
          queues: 2,
          ops: 3000,
          lbaRange: [i * share, share],
          seed: 100 + i,
        }),
    );
    await Promise.all(loads.map((w) => w.start()));
    const reports = await Promise.all(loads.map((w) => w.verify()));
    reports.forEach((v, i) => {
      assert.equal(v.verified, true, `VF${i + 1}: ${JSON.stringify(v.failures?.slice(0, 2))}`);
      assert.ok(v.ops >= 3000);
    });
    // Each VM really used its own secondary controller.
    assert.deepEqual(
      vms.map((vm) => vm.driver.identify?.cntlid),
      [1, 2, 3, 4],
    );
  } finally {
    await node.stop();
  }
});
