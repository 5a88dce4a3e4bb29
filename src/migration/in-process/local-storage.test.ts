/**
 * Local storage under a write-only load: the VM keeps writing while the source copies its namespace,
 * so the User Data Migration Queue fills fast. The variant driver drains it as it copies (also during
 * the initial pass); left to fill, the queue would end in "queue full" (ESA 7: every LBA changed), the
 * driver would restart logging, and the whole namespace would go again.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { AdminOpcode } from "../../nvme/opcodes.ts";
import { decodeTrackSend, TrackSendSel } from "../../nvme/track-commands.ts";
import type { AdminCommand } from "../../vfio/nvme/admin-channel.ts";
import { Workload } from "../../vmm/workload.ts";
import { TwoHosts } from "./two-hosts.ts";

test("local storage, writes during the initial copy: the UDMQ never fills up, zero loss", async () => {
  const namespaceBytes = 4 << 20;
  const t = await TwoHosts.start({
    storage: "local",
    namespaceBytes,
    vmRamBytes: 16 << 20,
    ioQueuePairs: 4,
    driver: { ioQueueEntries: 64 },
  });
  // Every "start logging user data changes" the source's variant driver sends to its PF.
  let loggingStarts = 0;
  const pf = t.a.host.pfDriver;
  const submit = pf.submit.bind(pf);
  pf.submit = (cmd: AdminCommand) => {
    if (cmd.opc === AdminOpcode.TrackSend) {
      const d = decodeTrackSend(cmd);
      if (d.ok && d.value.sel === TrackSendSel.LogUserDataChanges && d.value.lact === 1) loggingStarts++;
    }
    return submit(cmd);
  };
  const w = new Workload(t.vm.driver, t.vm.memory, {
    pattern: "random",
    readPercent: 0,
    blockBytes: 4096,
    queueDepth: 32,
    queues: 4,
    lbaRange: [0, 2048],
    seed: 21,
  });
  const running = w.start();
  try {
    await new Promise((r) => setTimeout(r, 20));
    const r = await t.migrate({ maxDowntimeMs: 300 });
    assert.equal(r.result, "completed", JSON.stringify(r.error));
    assert.equal(loggingStarts, 1, "logging started once: no queue-full restart");
    assert.ok(r.namespaceBytesTransferred >= namespaceBytes, `${r.namespaceBytesTransferred}`);
    await w.stop();
    await running;
    const v = await w.verify();
    assert.equal(v.verified, true, JSON.stringify(v.failures?.slice(0, 2)));
    assert.equal(v.lostWrites + v.badReads + v.duplicateCompletions + v.missingCompletions, 0);
  } finally {
    await w.stop().catch(() => {});
    await running.catch(() => {});
    await t.stop();
  }
});
