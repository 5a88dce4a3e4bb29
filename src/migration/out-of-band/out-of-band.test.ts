/**
 * Out-of-band live migration under verified load: the orchestrator drives both hosts' agents over real
 * gRPC (UNIX sockets), there and back, with shared and with local storage; zero loss. Plus the
 * regression test of the local-storage race: namespace data written to the destination out of order.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { NamespaceDataChunk } from "../../control/backend.ts";
import type { HostAgent } from "../../host/agent/index.ts";
import type { InProcessVm } from "../../vmm/in-process-vm.ts";
import { Workload } from "../../vmm/workload.ts";
import { TwoHosts } from "../in-process/two-hosts.ts";
import { TwoHostAgents } from "./agents.ts";

const LBA_BYTES = 512;

/** Guest Write of `data` at `slba` on I/O queue 1; resolves with the NVMe status once acknowledged. */
function guestWrite(vm: InProcessVm, slba: number, data: Uint8Array): Promise<number> {
  const gpa = vm.memory.allocPages(1);
  vm.memory.view(gpa, data.byteLength).set(data);
  return new Promise((res) =>
    vm.driver.submitWrite(1, 1, slba, data.byteLength / LBA_BYTES, gpa, (s) => {
      vm.memory.free(gpa);
      res(s);
    }),
  );
}

/** Guest Read of `bytes` at `slba` on I/O queue 1. */
async function guestRead(vm: InProcessVm, slba: number, bytes: number): Promise<Uint8Array> {
  const gpa = vm.memory.allocPages(1);
  const st = await new Promise<number>((res) =>
    vm.driver.submitRead(1, 1, slba, bytes / LBA_BYTES, gpa, (s) => res(s)),
  );
  assert.equal(st, 0);
  const out = vm.memory.view(gpa, bytes).slice();
  vm.memory.free(gpa);
  return out;
}

function covers(chunk: NamespaceDataChunk, lba: number): boolean {
  const first = Number(chunk.slba);
  return lba >= first && lba < first + chunk.data.byteLength / LBA_BYTES;
}

test("out-of-band local storage: a write acknowledged just before the suspend reaches the destination", async () => {
  const namespaceBytes = 1 << 20;
  const t = await TwoHosts.start({ storage: "local", namespaceBytes, vmRamBytes: 8 << 20, ioQueuePairs: 2 });
  const agents = await TwoHostAgents.start(t);
  const slba = 16;
  const old = new Uint8Array(4096).fill(0xa1);
  const acknowledged = new Uint8Array(4096).fill(0x5e);
  try {
    assert.equal(await guestWrite(t.vm, slba, old), 0);

    // The guest's last write is acknowledged right before its vCPUs stop (and so before the source
    // controller is suspended): its range is among the last before ESA 3, after the initial pass.
    const port = t.vm.port;
    const pause = port.pause.bind(port);
    let wroteBeforeSuspend = false;
    (port as { pause: () => unknown }).pause = async () => {
      if (!wroteBeforeSuspend) {
        wroteBeforeSuspend = true;
        assert.equal(await guestWrite(t.vm, slba, acknowledged), 0);
      }
      pause();
    };

    // Destination: the first write holding the block (the initial pass, old contents) is slow, as a
    // 128 KiB message can be on a loaded machine. It goes on once a later write of that block has been
    // applied (the race), or 500 ms after the source's suspend if none came meanwhile (writes in order).
    let release: () => void = () => {};
    const slowWrite = new Promise<void>((r) => {
      release = r;
    });
    const source: HostAgent = agents.a.agent;
    const suspend = source.suspend.bind(source);
    source.suspend = (p, ctx) => {
      setTimeout(release, 500).unref();
      return suspend(p, ctx);
    };
    const destination: HostAgent = agents.b.agent;
    const writeNamespaceData = destination.writeNamespaceData.bind(destination);
    let gated = false;
    destination.writeNamespaceData = (p, chunks, ctx) => {
      let holdsBlock = false;
      const held = (async function* () {
        for await (const c of chunks) {
          if (covers(c, slba)) {
            holdsBlock = true;
            if (!gated) {
              gated = true;
              await slowWrite;
            }
          }
          yield c;
        }
      })();
      const r = writeNamespaceData(p, held, ctx);
      return r.then((v) => {
        if (holdsBlock) release();
        return v;
      });
    };

    const r = await agents.migrate({ maxDowntimeMs: 50, maxIterations: 5 });
    assert.equal(r.result, "completed", JSON.stringify(r.error));
    assert.equal(t.current, "b");
    assert.ok(wroteBeforeSuspend && gated);
    const seen = await guestRead(t.vm, slba, acknowledged.byteLength);
    assert.deepEqual(seen, acknowledged, "the acknowledged write reached the destination");
    // The source is frozen since its suspend: the destination holds exactly the same namespace.
    const src = new Uint8Array(namespaceBytes);
    const dst = new Uint8Array(namespaceBytes);
    t.a.store.read(0, src);
    t.b.store.read(0, dst);
    assert.ok(Buffer.from(src).equals(Buffer.from(dst)), "destination namespace = source namespace");
  } finally {
    await agents.stop();
    await t.stop();
  }
});

for (const storage of ["shared", "local"] as const) {
  test(`out-of-band migration there and back, ${storage} storage: zero loss`, async () => {
    const t = await TwoHosts.start({
      storage,
      namespaceBytes: 2 << 20,
      vmRamBytes: 8 << 20,
      ioQueuePairs: 2,
    });
    const agents = await TwoHostAgents.start(t);
    const w = new Workload(t.vm.driver, t.vm.memory, {
      pattern: "random",
      readPercent: 50,
      blockBytes: 4096,
      queueDepth: 8,
      queues: 2,
      seed: 5,
    });
    const running = w.start();
    try {
      await new Promise((r) => setTimeout(r, 30));
      for (let i = 0; i < 2; i++) {
        // Local storage: the in-process guest dirties blocks faster than the agents copy them, so
        // pre-copy never converges (each round moves its 8 MiB cap); one round bounds the test's time,
        // the stop-copy takes the rest.
        const maxIterations = storage === "local" ? 1 : 5;
        const r = await agents.migrate({ maxDowntimeMs: 50, maxIterations });
        assert.equal(r.result, "completed", JSON.stringify(r.error));
        assert.equal(r.path, "out-of-band");
        assert.ok(r.stateBytes > 0);
        if (storage === "local") assert.ok(r.namespaceBytesTransferred >= 2 << 20);
        await new Promise((res) => setTimeout(res, 20));
      }
      assert.equal(t.current, "a");
      await w.stop();
      await running;
      const v = await w.verify();
      assert.equal(v.verified, true, JSON.stringify(v.failures?.slice(0, 2)));
      assert.equal(v.lostWrites + v.badReads + v.duplicateCompletions + v.missingCompletions, 0);
    } finally {
      await w.stop().catch(() => {});
      await running.catch(() => {});
      await agents.stop();
      await t.stop();
    }
  });
}
