import assert from "node:assert/strict";
import { test } from "node:test";
import { Cns } from "../nvme/identifiers.ts";
import { encodeMigrationSend } from "../nvme/migration-commands.ts";
import { AdminOpcode } from "../nvme/opcodes.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { HostNode } from "./host-node.ts";

/** True when a turn of the event loop passed while `op` ran (an immediate queued first has run). */
async function turnPassed(op: () => Promise<unknown>): Promise<boolean> {
  // Let earlier work (a pass or an interrupt already scheduled) finish first.
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  let turned = false;
  const i = setImmediate(() => {
    turned = true;
  });
  await op();
  clearImmediate(i);
  return turned;
}

test("PF admin commands complete in the caller's turn: the PF processes them and the driver reaps at once", async () => {
  const store = createMemoryBlockStore({ lbaBytes: 512, lbaCount: 2048 });
  const host = await HostNode.start({
    name: "pf",
    namespaces: [{ nsid: 1, store }],
    secondaryCount: 1,
    pfHostMemoryBytes: 4 << 20,
  });
  try {
    await host.bringUpVf(1, 2);
    const vf = host.vf(1).controller;
    let reply: Awaited<ReturnType<typeof host.pfDriver.submit>> | undefined;
    const identify = async () => {
      reply = await host.pfDriver.submit({
        opc: AdminOpcode.Identify,
        cdw10: Cns.IdentifyController,
        dataInBytes: 4096,
      });
    };
    assert.equal(await turnPassed(identify), false);
    assert.equal(reply?.status, 0);
    assert.equal(reply?.data?.byteLength, 4096);
    // Suspend of a controlled controller with nothing in flight completes at once too.
    const suspend = async () => {
      reply = await host.pfDriver.submit({
        opc: AdminOpcode.MigrationSend,
        ...encodeMigrationSend({ sel: 0, cntlid: vf.cntlid, stype: 1, dudmq: false, uidx: 0 }),
      });
    };
    assert.equal(await turnPassed(suspend), false);
    assert.equal(reply?.status, 0);
    assert.equal(vf.suspended, true);
  } finally {
    await host.stop();
  }
});
