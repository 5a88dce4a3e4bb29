/**
 * Guest state round trip: a verified workload is frozen mid-run, its driver / workload / verifier /
 * allocator state goes through the wire form (`encodeGuestState` → bytes → `decodeGuestState`), and
 * brand-new objects built from it continue the run on the same function and RAM; the verifier then
 * finds nothing lost or duplicated. Also: a malformed or foreign state is refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HostNode } from "../host/host-node.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { GuestMemory } from "./guest-memory.ts";
import { decodeGuestState, encodeGuestState, GuestStateError } from "./guest-state.ts";
import { InProcessPort } from "./in-process-port.ts";
import { startInProcessVm } from "./in-process-vm.ts";
import { GuestNvmeDriver } from "./nvme-driver.ts";
import { Workload } from "./workload.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const completionMode of ["interrupt", "polling"] as const) {
  test(`a frozen guest saved and restored into new objects continues with zero loss (${completionMode})`, async () => {
    const node = await HostNode.start({
      name: "host",
      namespaces: [{ nsid: 1, store: createMemoryBlockStore({ lbaBytes: 512, lbaCount: 4096 }) }],
      secondaryCount: 1,
      pfHostMemoryBytes: 8 << 20,
    });
    try {
      const fn = await node.bringUpVf(1, 2);
      const vm = await startInProcessVm(fn, {
        memoryBytes: 4 << 20,
        driver: { ioQueues: 2, completionMode, shadowDoorbells: completionMode === "interrupt" },
      });
      const w = new Workload(vm.driver, vm.memory, {
        pattern: "random",
        readPercent: 40,
        blockBytes: 4096,
        queueDepth: 8,
        queues: 2,
        lbaRange: [0, 1024],
        seed: 5,
      });
      void w.start();
      await sleep(60);
      const opsBefore = w.completedOps;
      assert.ok(opsBefore > 0);
      vm.port.pause();
      vm.driver.freeze();
      await sleep(20); // the device finishes what it fetched; the CQEs wait in guest RAM
      const bytes = encodeGuestState(vm.memory.sizeBytes, {
        memory: vm.memory.saveAllocator(),
        driver: vm.driver.saveState(w.ioTokenOf),
        workload: w.saveState(),
        interrupts: null,
      });
      vm.port.detach();
      w.endMigratedAway();
      vm.driver.endMigratedAway();

      const state = decodeGuestState(bytes, vm.memory.sizeBytes);
      const mem2 = new GuestMemory(vm.memory.bytes);
      mem2.loadAllocator(state.sections.memory);
      const port2 = new InProcessPort(fn, mem2);
      let w2: Workload | undefined;
      const driver2 = GuestNvmeDriver.restore(port2, mem2, state.sections.driver, (token) => {
        return (st, dw0, cid) => w2!.callbackFor(token)(st, dw0, cid);
      });
      w2 = Workload.restore(driver2, mem2, state.sections.workload);
      assert.ok(w2.completedOps >= opsBefore);
      driver2.resumeAfterMigration();
      void w2.resumeRestored();
      await sleep(60);
      assert.ok(w2.completedOps > opsBefore, "the restored guest keeps doing I/O");
      const report = await w2.verify();
      assert.equal(report.verified, true, JSON.stringify(report.failures));
      assert.equal(report.lostWrites, 0);
      assert.equal(report.duplicateCompletions, 0);
      assert.equal(report.missingCompletions, 0);
      w2.release();
      await driver2.shutdown();
    } finally {
      await node.stop();
    }
  });
}

test("a guest state that is not ours, of another version or RAM size is refused", () => {
  const bad = (text: string) => new TextEncoder().encode(text);
  assert.throws(
    () => decodeGuestState(bad("{nope"), 4096),
    (e: unknown) => e instanceof GuestStateError && e.code === "malformed",
  );
  assert.throws(
    () =>
      decodeGuestState(
        bad(JSON.stringify({ format: "nvmig-guest-state", version: 99, ramBytes: 4096, sections: {} })),
        4096,
      ),
    (e: unknown) => e instanceof GuestStateError && e.code === "version",
  );
  assert.throws(
    () =>
      decodeGuestState(
        bad(JSON.stringify({ format: "nvmig-guest-state", version: 1, ramBytes: 8192, sections: {} })),
        4096,
      ),
    (e: unknown) => e instanceof GuestStateError && e.code === "mismatch",
  );
  assert.throws(
    () =>
      decodeGuestState(
        bad(
          JSON.stringify({
            format: "nvmig-guest-state",
            version: 1,
            ramBytes: 4096,
            sections: { memory: {} },
          }),
        ),
        4096,
      ),
    /no driver section/,
  );
});
