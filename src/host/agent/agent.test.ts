/**
 * The agent through REAL gRPC (UNIX sockets, the real server and client) over two real HostNodes that
 * share one namespace store (shared storage): list and describe, a guest's VF migrated from host A to
 * host B with Suspend / Get / Set Controller State / Resume while its verified workload keeps running,
 * the error statuses, lease-expiry undo (resume, reset), user-data logging streams (ESA 2, ESA 3),
 * dirty tracking against an independent DMA-write oracle, and namespace data over shared storage.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { allowAll } from "../../control/authz.ts";
import type { ChangedLbaRange, SequencedControlEvent } from "../../control/backend.ts";
import { type ControlClient, connectControl } from "../../control/client.ts";
import { type ControlServer, createControlServer } from "../../control/server.ts";
import { collect, recordingLogger, rejectsWith, tempDir } from "../../control/test-support.ts";
import type { DirtyLogger } from "../../memory/dma.ts";
import { createMemoryBlockStore } from "../../storage/memory-block-store.ts";
import { type InProcessVm, startInProcessVm } from "../../vmm/in-process-vm.ts";
import { Workload } from "../../vmm/workload.ts";
import { HostNode } from "../host-node.ts";
import { createHostAgent, type HostAgent } from "./agent.ts";

const PAGE = 4096;
const GUEST_RAM_BYTES = 16 << 20;
const LBA_COUNT = 1 << 15;

/** Polls `predicate` every 5 ms until true or `deadlineMs` passed (then fails with `what`). */
async function eventually(what: string, predicate: () => boolean | Promise<boolean>, deadlineMs = 5000) {
  const end = Date.now() + deadlineMs;
  while (!(await predicate())) {
    if (Date.now() > end) assert.fail(`not reached in time: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Page bitmap of every device write to guest RAM (the oracle for dirty tracking). */
class PageOracle implements DirtyLogger {
  readonly bitmap = new Uint8Array(GUEST_RAM_BYTES / PAGE / 8);
  logWrite(iova: number, lengthBytes: number): void {
    for (let p = Math.floor(iova / PAGE); p <= Math.floor((iova + lengthBytes - 1) / PAGE); p++) {
      if (p < GUEST_RAM_BYTES / PAGE) this.bitmap[p >>> 3]! |= 1 << (p & 7);
    }
  }
}

function popcount(bitmap: Uint8Array): number {
  let n = 0;
  for (const b of bitmap) for (let x = b; x !== 0; x &= x - 1) n++;
  return n;
}

describe("HostAgent: the controlling function's agent behind the gRPC control plane", () => {
  const dir = tempDir("agent");
  const store = createMemoryBlockStore({ lbaBytes: 512, lbaCount: LBA_COUNT });
  const loggerB = recordingLogger();
  let hostA: HostNode;
  let hostB: HostNode;
  let agentA: HostAgent;
  let agentB: HostAgent;
  let serverA: ControlServer;
  let serverB: ControlServer;
  let a: ControlClient;
  let b: ControlClient;
  let vm: InProcessVm;

  before(async () => {
    const node = (name: string) =>
      HostNode.start({
        name,
        namespaces: [{ nsid: 1, store }],
        secondaryCount: 2,
        pfHostMemoryBytes: 8 << 20,
      });
    hostA = await node("host-a");
    hostB = await node("host-b");
    const options = { leases: { minLeaseMs: 50 }, udmqPollMs: 5, statePollMs: 50 };
    agentA = await createHostAgent(hostA, { ...options, logger: recordingLogger() });
    agentB = await createHostAgent(hostB, { ...options, logger: loggerB });
    const serve = (backend: HostAgent, host: string) =>
      createControlServer({
        backend,
        authz: allowAll(host, ["local"]),
        logger: recordingLogger(),
        listen: { unix: { path: join(dir.path, `${host}.sock`) } },
      });
    serverA = await serve(agentA, "host-a");
    serverB = await serve(agentB, "host-b");
    a = connectControl({ target: `unix:${serverA.unixPath}` });
    b = connectControl({ target: `unix:${serverB.unixPath}` });
  });

  after(async () => {
    a.close();
    b.close();
    await serverA.close();
    await serverB.close();
    await agentA.close();
    await agentB.close();
    await vm?.driver.shutdown().catch(() => {});
    vm?.port.detach();
    await hostA.stop();
    await hostB.stop();
    dir.cleanup();
  });

  it("lists the controlled functions of the Secondary Controller List, then a VF brought up with a guest on it", async () => {
    const listed = await a.listFunctions();
    assert.deepEqual(
      listed.map((f) => [f.cntlid, f.vfNumber, f.pciName, f.state, f.ioQueuePairs]),
      [
        [1, 1, "0000:01:00.1", "offline", 0],
        [2, 2, "0000:01:00.2", "offline", 0],
      ],
    );
    await hostA.bringUpVf(1, 2);
    vm = await startInProcessVm(hostA.vf(1), {
      memoryBytes: GUEST_RAM_BYTES,
      driver: { ioQueues: 2, ioQueueEntries: 64 },
    });
    const d = await a.describeFunction(1);
    assert.equal(d.function.state, "running");
    assert.equal(d.function.ioQueuePairs, 2);
    assert.deepEqual(d.function.namespaces, [{ nsid: 1, sizeBlocks: BigInt(LBA_COUNT), lbaBytes: 512 }]);
    assert.equal(d.controllerStateBytes, 0n);
    assert.equal(d.userDataLogging, false);
    assert.equal(d.dirtyTracking, false);
    assert.equal(d.lease, undefined);
  });

  it("maps unknown functions to NOT_FOUND and device refusals to FAILED_PRECONDITION naming the status", async () => {
    await rejectsWith(a.describeFunction(9), "not-found", /CNTLID 9/);
    await rejectsWith(a.suspend({ cntlid: 9, suspendType: "suspend" }), "not-found");
    await rejectsWith(a.resume({ cntlid: 1 }), "failed-precondition", /ControllerNotSuspended/);
    await rejectsWith(a.readControllerState({ cntlid: 1 }), "failed-precondition", /ControllerNotSuspended/);
    await rejectsWith(
      a.reportDirtyPages({ cntlid: 1, iova: 0n, lengthBytes: 4096n, pageSizeBytes: 4096n }),
      "failed-precondition",
    );
    await rejectsWith(a.stopUserDataLogging(1), "failed-precondition");
    await rejectsWith(a.resume({ cntlid: 1, leaseId: "no-such-lease" }), "not-found");
    assert.equal((await a.describeFunction(1)).function.state, "running");
  });

  it("reads and writes namespace data by LBA ranges; both hosts see the same blocks (shared storage)", async () => {
    const data = Uint8Array.from({ length: 40 * 512 }, (_, i) => (i * 7 + 3) & 0xff);
    assert.deepEqual(await a.writeNamespaceData({ cntlid: 1, nsid: 1 }, [{ slba: 30000n, data }]), {
      blocksWritten: 40n,
    });
    const chunks = await collect(
      b.readNamespaceData({ cntlid: 1, nsid: 1, ranges: [{ slba: 30000n, nlb: 39 }], maxChunkBytes: 8192 }),
    );
    assert.ok(chunks.length > 1, "re-split into 8 KiB messages");
    assert.ok(sameBytes(Buffer.concat(chunks.map((c) => c.data)), data));
    await rejectsWith(
      collect(a.readNamespaceData({ cntlid: 1, nsid: 1, ranges: [{ slba: BigInt(LBA_COUNT - 1), nlb: 1 }] })),
      "invalid-argument",
    );
    await rejectsWith(
      collect(a.readNamespaceData({ cntlid: 1, nsid: 7, ranges: [{ slba: 0n, nlb: 0 }] })),
      "not-found",
    );
  });

  it("dirty tracking reports exactly the guest pages the device wrote, read-and-clear", async () => {
    const fn = hostA.vf(1);
    const oracle = new PageOracle();
    fn.dma.attachLogger(oracle);
    try {
      const range = { iova: 0n, lengthBytes: BigInt(GUEST_RAM_BYTES) };
      assert.deepEqual(await a.startDirtyTracking({ cntlid: 1, ranges: [range], pageSizeBytes: 4096n }), {
        pageSizeBytes: 4096n,
      });
      assert.equal((await a.describeFunction(1)).dirtyTracking, true);
      await rejectsWith(
        a.startDirtyTracking({ cntlid: 1, ranges: [range], pageSizeBytes: 4096n }),
        "failed-precondition",
        /CommandSequenceError/,
      );
      const w = new Workload(vm.driver, vm.memory, {
        pattern: "random",
        readPercent: 50,
        blockBytes: 4096,
        queueDepth: 4,
        queues: 2,
        lbaRange: [0, 1024],
        ops: 64,
        seed: 1,
      });
      assert.equal((await w.start()).errors, 0);
      const report = () =>
        a.reportDirtyPages({ cntlid: 1, iova: 0n, lengthBytes: range.lengthBytes, pageSizeBytes: 4096n });
      const dirty = await report();
      assert.equal(dirty.length, GUEST_RAM_BYTES / PAGE / 8);
      assert.ok(popcount(dirty) > 0, "the device wrote completions and read data");
      assert.ok(sameBytes(dirty, oracle.bitmap), "reported pages = pages the device wrote");
      assert.equal(popcount(await report()), 0, "read-and-clear");
      await a.stopDirtyTracking(1);
      assert.equal((await a.describeFunction(1)).dirtyTracking, false);
      assert.equal((await w.verify()).verified, true);
    } finally {
      fn.dma.detachLogger(oracle);
    }
  });

  it("streams the LBA ranges the guest wrote while user-data logging is on; stopping ends it (ESA 2)", async () => {
    await a.startUserDataLogging(1);
    await rejectsWith(a.startUserDataLogging(1), "failed-precondition");
    assert.equal((await a.describeFunction(1)).userDataLogging, true);
    const streamed = collect(a.streamChangedLbaRanges(1));
    const w = new Workload(vm.driver, vm.memory, {
      pattern: "random",
      readPercent: 0,
      blockBytes: 4096,
      queueDepth: 4,
      queues: 2,
      lbaRange: [2048, 2048],
      ops: 96,
      seed: 2,
    });
    assert.equal((await w.start()).errors, 0);
    await a.stopUserDataLogging(1);
    const entries: ChangedLbaRange[] = (await streamed).flat();
    assert.equal(entries[0]?.entrySequence, "first");
    assert.deepEqual(entries.at(-1), {
      nsid: 0,
      slba: 0n,
      nlb: 0,
      entrySequence: "last-logging-stopped",
      changeInfo: "no-range",
      deallocated: false,
    });
    const logged = new Set<number>();
    for (const e of entries.slice(0, -1)) {
      assert.equal(e.changeInfo, "range-valid");
      assert.equal(e.nsid, 1);
      for (let lba = Number(e.slba); lba <= Number(e.slba) + e.nlb; lba++) logged.add(lba);
    }
    const written: number[] = [];
    for (let lba = 2048; lba < 4096; lba++) if (w.verifier!.anyWritten(lba, 1)) written.push(lba);
    assert.ok(written.length > 0);
    assert.deepEqual(
      [...logged].sort((x, y) => x - y),
      written,
    );
    assert.equal((await a.describeFunction(1)).userDataLogging, false);
    assert.equal((await w.verify()).verified, true);
  });

  it("a Suspend with DUDMQ ends the changed-LBA stream with ESA 3 (last-suspended)", async () => {
    await hostA.bringUpVf(2, 1);
    await a.startUserDataLogging(2);
    const streamed = collect(a.streamChangedLbaRanges(2));
    assert.deepEqual(await a.suspend({ cntlid: 2, suspendType: "suspend", deleteUdmq: true }), {
      state: "suspended",
    });
    const entries = (await streamed).flat();
    assert.deepEqual(
      entries.map((e) => [e.entrySequence, e.changeInfo]),
      [["last-suspended", "no-range"]],
    );
    assert.ok((await a.describeFunction(2)).controllerStateBytes > 48n);
    assert.deepEqual(await a.resume({ cntlid: 2 }), { state: "running" });
    // The queue is gone: logging can start again on a new one.
    await a.startUserDataLogging(2);
    await a.stopUserDataLogging(2);
    assert.deepEqual(
      (await collect(a.streamChangedLbaRanges(2))).flat().map((e) => e.entrySequence),
      ["last-logging-stopped"],
    );
  });

  it("a range the guest wrote just before a Suspend is streamed before the ESA 3 entry, which alone ends the stream", async () => {
    await a.startUserDataLogging(1);
    let ended = false;
    const streamed = collect(a.streamChangedLbaRanges(1)).finally(() => {
      ended = true;
    });
    const slba = 6000;
    const gpa = vm.memory.allocPages(1);
    vm.memory.view(gpa, PAGE).fill(0x3c);
    const status = await new Promise<number>((res) => vm.driver.submitWrite(1, 1, slba, 8, gpa, res));
    vm.memory.free(gpa);
    assert.equal(status, 0);
    // Logging is still on: the stream has not ended, whatever it has sent so far.
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(ended, false);
    assert.deepEqual(await a.suspend({ cntlid: 1, suspendType: "suspend" }), { state: "suspended" });
    // The written range, then the ESA 3 end entry: nothing missing, nothing after it.
    assert.deepEqual(
      (await streamed).flat().map((e) => [e.entrySequence, e.changeInfo, e.nsid, e.slba, e.nlb]),
      [
        ["first", "range-valid", 1, BigInt(slba), 7],
        ["last-suspended", "no-range", 0, 0n, 0],
      ],
    );
    assert.equal((await a.describeFunction(1)).userDataLogging, false);
    assert.deepEqual(await a.resume({ cntlid: 1 }), { state: "running" });
  });

  it("migrates the guest's VF from host A to host B under leases; the workload verifies with zero loss", async () => {
    await hostB.bringUpVf(1, 2);
    const leaseA = await a.acquireLease({ cntlid: 1, leaseMs: 60_000, description: "migration test" });
    const leaseB = await b.acquireLease({ cntlid: 1, leaseMs: 60_000, description: "migration test" });
    assert.equal((await a.describeFunction(1)).lease?.leaseId, leaseA.leaseId);

    const events: SequencedControlEvent[] = [];
    const stopWatching = new AbortController();
    const watching = (async () => {
      try {
        for await (const ev of b.watchEvents({ cntlids: [1] }, { signal: stopWatching.signal }))
          events.push(ev);
      } catch {
        // cancelled
      }
    })();

    const w = new Workload(vm.driver, vm.memory, {
      pattern: "random",
      readPercent: 50,
      blockBytes: 4096,
      queueDepth: 8,
      queues: 2,
      lbaRange: [8192, 8192],
      seed: 3,
      drainTimeoutMs: 5000,
    });
    const finished = w.start();
    await eventually("guest I/O on host A", () => w.completedOps > 100);

    // vCPUs stop; the source is suspended under its lease and its state read.
    vm.port.pause();
    await rejectsWith(a.suspend({ cntlid: 1, suspendType: "suspend" }), "failed-precondition", /lease/);
    assert.deepEqual(await a.suspend({ cntlid: 1, suspendType: "suspend", leaseId: leaseA.leaseId }), {
      state: "suspended",
    });
    const opsAtSuspend = w.completedOps;
    const state = await a.readControllerState({ cntlid: 1 });
    assert.equal((await a.describeFunction(1)).controllerStateBytes, BigInt(state.length));

    // Destination: suspended, guest RAM copied there and mapped into its VF.
    assert.deepEqual(await b.suspend({ cntlid: 1, suspendType: "suspend", leaseId: leaseB.leaseId }), {
      state: "suspended",
    });
    const destinationRam = new Uint8Array(vm.memory.bytes.byteLength);
    destinationRam.set(vm.memory.bytes);
    vm.memory.rebind(destinationRam);
    vm.port.retarget(hostB.vf(1));

    // A corrupted state is refused and changes nothing.
    const before = await b.readControllerState({ cntlid: 1 });
    const badVersion = state.slice();
    badVersion[0]! ^= 0xff;
    await rejectsWith(
      b.writeControllerState({ cntlid: 1, leaseId: leaseB.leaseId, state: badVersion }),
      "invalid-argument",
      /InvalidFieldInCommand/,
    );
    await rejectsWith(
      b.writeControllerState({
        cntlid: 1,
        leaseId: leaseB.leaseId,
        state: state.subarray(0, state.length - 8),
      }),
      "invalid-argument",
    );
    assert.ok(sameBytes(await b.readControllerState({ cntlid: 1 }), before), "destination unchanged");
    assert.equal((await b.describeFunction(1)).function.state, "suspended");

    assert.deepEqual(await b.writeControllerState({ cntlid: 1, leaseId: leaseB.leaseId, state }), {
      appliedBytes: BigInt(state.length),
      state: "suspended",
    });
    assert.deepEqual(await b.resume({ cntlid: 1, leaseId: leaseB.leaseId }), { state: "running" });
    vm.port.resume();

    await eventually("guest I/O on host B", () => w.completedOps > opsAtSuspend + 100);
    await w.stop();
    const stats = await finished;
    assert.equal(stats.errors, 0);
    const report = await w.verify();
    assert.equal(report.verified, true, JSON.stringify(report.failures));
    assert.equal(report.lostWrites, 0);
    assert.equal(report.badReads, 0);
    assert.equal(report.duplicateCompletions, 0);
    assert.equal(report.missingCompletions, 0);
    assert.equal(vm.driver.stats().ioTimeouts, 0);

    // The source is reset and both leases given back.
    assert.deepEqual(await a.resetFunction({ cntlid: 1, leaseId: leaseA.leaseId }), { state: "running" });
    assert.equal((await a.describeFunction(1)).function.ioQueuePairs, 0);
    await a.releaseLease({ cntlid: 1, leaseId: leaseA.leaseId });
    await b.releaseLease({ cntlid: 1, leaseId: leaseB.leaseId });
    assert.equal((await b.describeFunction(1)).lease, undefined);

    await eventually("events seen", () =>
      events.some((e) => e.kind === "state-changed" && e.toState === "running"),
    );
    stopWatching.abort();
    await watching;
    const states = events.flatMap((e) => (e.kind === "state-changed" ? [e.toState] : []));
    const suspendedAt = states.indexOf("suspended");
    assert.ok(suspendedAt >= 0, `events: ${states.join(",")}`);
    assert.ok(states.indexOf("running", suspendedAt) > suspendedAt, `events: ${states.join(",")}`);
  });

  it("a lease that expires resumes the function suspended under it", async () => {
    const seen: SequencedControlEvent[] = [];
    const stopWatching = new AbortController();
    const watching = (async () => {
      try {
        for await (const ev of a.watchEvents({ cntlids: [2] }, { signal: stopWatching.signal }))
          seen.push(ev);
      } catch {
        // cancelled
      }
    })();
    const lease = await a.acquireLease({ cntlid: 2, leaseMs: 60_000, description: "dies" });
    assert.deepEqual(await a.suspend({ cntlid: 2, suspendType: "suspend", leaseId: lease.leaseId }), {
      state: "suspended",
    });
    // The orchestrator's last renewal was a short one; then it is gone.
    assert.equal((await a.renewLease({ cntlid: 2, leaseId: lease.leaseId, leaseMs: 50 })).leaseMs, 50);
    await eventually("auto-resume", async () => (await a.describeFunction(2)).function.state === "running");
    assert.equal((await a.describeFunction(2)).lease, undefined);
    await rejectsWith(a.resume({ cntlid: 2, leaseId: lease.leaseId }), "not-found", /expired/);
    await eventually("lease-expired event", () =>
      seen.some((e) => e.kind === "lease-expired" && e.leaseId === lease.leaseId),
    );
    stopWatching.abort();
    await watching;
  });

  it("a lease that expires after Set Controller State resets the destination function instead", async () => {
    await hostB.bringUpVf(2, 1);
    const lease = await b.acquireLease({ cntlid: 2, leaseMs: 60_000, description: "dies" });
    await b.suspend({ cntlid: 2, suspendType: "suspend", leaseId: lease.leaseId });
    const state = await b.readControllerState({ cntlid: 2 });
    assert.deepEqual(await b.writeControllerState({ cntlid: 2, leaseId: lease.leaseId, state }), {
      appliedBytes: BigInt(state.length),
      state: "suspended",
    });
    await b.renewLease({ cntlid: 2, leaseId: lease.leaseId, leaseMs: 50 });
    await eventually("reset after expiry", () => loggerB.events().includes("agent.lease-expiry-reset"));
    assert.equal((await b.describeFunction(2)).function.state, "running");
    assert.ok(!loggerB.events().includes("agent.lease-expiry-failed"));
  });
});
