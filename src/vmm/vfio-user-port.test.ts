/**
 * `VfioUserPort` against a real vfio-user server over a real socketpair: a VF of a real subsystem
 * exported by `VfioUserServer` + the host's `NvmeFunctionBackend` (vfio-user-export.ts), guest RAM in a memfd the server
 * mmaps (DMA_MAP with the fd), doorbells stored into the server's mmap'd doorbell page, MSI-X through
 * eventfds. The guest driver comes up and a verified workload runs.
 */
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import type { NvmeFunction } from "../controller/nvme-function.ts";
import { Tp4159Commands } from "../host/agent/tp4159-commands.ts";
import { HostNode } from "../host/host-node.ts";
import { NvmeFunctionBackend } from "../host/vfio-user-export.ts";
import { GuestMemoryFd } from "../native/guest-memory-fd.ts";
import { SuspendType } from "../nvme/migration-commands.ts";
import { createMemoryBlockStore } from "../storage/memory-block-store.ts";
import { VfioUserClient } from "../vfio-user/client.ts";
import { VfioUserServer } from "../vfio-user/server.ts";
import { SocketTransport } from "../vfio-user/socket-transport.ts";
import { GuestMemory } from "./guest-memory.ts";
import { GuestNvmeDriver, type GuestNvmeDriverOptions } from "./nvme-driver.ts";
import { VfioUserPort, type VfioUserPortEvent } from "./vfio-user-port.ts";
import { Workload } from "./workload.ts";

const MiB = 1 << 20;

interface Exported {
  backend: NvmeFunctionBackend;
  server: VfioUserServer;
  client: VfioUserClient;
  close(): void;
}

/** Exports `fn` with a fresh server + backend over a socketpair and connects a client to it. */
async function exportFunction(fn: NvmeFunction): Promise<Exported> {
  const backend = new NvmeFunctionBackend(fn);
  const server = new VfioUserServer({ backend });
  const [serverEnd, clientEnd] = SocketTransport.pair();
  server.attach(serverEnd);
  const client = await VfioUserClient.connect(clientEnd);
  return {
    backend,
    server,
    client,
    close() {
      client.close();
      server.close();
      backend.dispose();
    },
  };
}

interface Vm {
  ram: GuestMemoryFd;
  mem: GuestMemory;
  port: VfioUserPort;
  driver: GuestNvmeDriver;
  events: VfioUserPortEvent[];
}

async function startVm(exported: Exported, driver: GuestNvmeDriverOptions = {}): Promise<Vm> {
  const ram = GuestMemoryFd.create("guest-ram", 16 * MiB);
  const events: VfioUserPortEvent[] = [];
  const port = await VfioUserPort.attach(exported.client, ram, { log: (e) => events.push(e) });
  const mem = new GuestMemory(ram.bytes());
  const d = new GuestNvmeDriver(port, mem, driver);
  await d.init();
  return { ram, mem, port, driver: d, events };
}

async function stopVm(vm: Vm): Promise<void> {
  vm.port.resume();
  await vm.driver.shutdown().catch(() => {});
  await vm.port.detach();
  vm.ram.close();
}

const store = createMemoryBlockStore({ lbaBytes: 4096, lbaCount: 8192 });
const host = await HostNode.start({
  name: "port-test",
  namespaces: [{ nsid: 1, store }],
  secondaryCount: 4,
  pfHostMemoryBytes: 4 * MiB,
});
after(async () => {
  await host.stop();
  store.close();
});

describe("VfioUserPort over a socketpair", () => {
  it("brings the driver up and runs a verified workload (interrupts through eventfds, mmap'd doorbells)", {
    timeout: 20_000,
  }, async () => {
    const fn = await host.bringUpVf(1, 2);
    const exported = await exportFunction(fn);
    const vm = await startVm(exported, { ioQueues: 2, ioQueueEntries: 64 });
    try {
      assert.ok(vm.port.doorbellsMapped, "the doorbell page is mapped");
      assert.equal(vm.driver.ioQueueCount, 2);
      const w = new Workload(vm.driver, vm.mem, {
        pattern: "random",
        readPercent: 50,
        blockBytes: 4096,
        queueDepth: 16,
        queues: 2,
        lbaRange: [0, 1024],
        ops: 3000,
        seed: 7,
      });
      const s = await w.start();
      assert.equal(s.errors, 0);
      const report = await w.verify();
      assert.equal(report.verified, true, JSON.stringify(report.failures));
      assert.ok(report.writes > 0 && report.reads > 0);
      const ps = vm.port.stats();
      assert.ok(ps.interruptsDelivered > 0, "MSI-X messages arrived through eventfds");
      assert.equal(ps.vectorsRegistered, 3, "admin + 2 I/O vectors registered");
      assert.ok(ps.mmioDoorbells > 0, "doorbells were stores into the page");
      // No doorbell went by message: every BAR0 posted write was a register (there are few).
      assert.ok(ps.postedWrites < 64, `posted writes ${ps.postedWrites}`);
      assert.equal(ps.failedReads, 0);
      assert.ok(vm.driver.stats().interrupts > 0);
    } finally {
      await stopVm(vm);
      exported.close();
    }
  });

  it("runs in polling mode with shadow doorbells", { timeout: 20_000 }, async () => {
    const fn = await host.bringUpVf(2, 1);
    const exported = await exportFunction(fn);
    const vm = await startVm(exported, { completionMode: "polling", shadowDoorbells: true });
    try {
      assert.equal(vm.driver.shadowDoorbellsActive, true);
      const w = new Workload(vm.driver, vm.mem, {
        pattern: "sequential",
        readPercent: 30,
        blockBytes: 8192,
        queueDepth: 8,
        queues: 1,
        lbaRange: [2048, 512],
        ops: 1500,
        seed: 3,
      });
      await w.start();
      const report = await w.verify();
      assert.equal(report.verified, true, JSON.stringify(report.failures));
      assert.equal(vm.port.stats().vectorsRegistered, 1, "only the admin vector in polling mode");
    } finally {
      await stopVm(vm);
      exported.close();
    }
  });

  it("pause holds accesses and interrupts; retarget follows a TP4159 migration to another VF", {
    timeout: 20_000,
  }, async () => {
    // Source VF3 and destination VF4 of one subsystem (shared namespace): the host's PF driver
    // suspends VF3, reads its controller state, sets it into VF4 and resumes VF4, while the VM's
    // port is paused; the port is retargeted to VF4's server in between.
    const srcFn = await host.bringUpVf(3, 1);
    const dstFn = await host.bringUpVf(4, 1);
    const tp = await Tp4159Commands.open(host.pfDriver);
    const src = await exportFunction(srcFn);
    const vm = await startVm(src, { ioQueues: 1 });
    let dst: Exported | undefined;
    try {
      const w = new Workload(vm.driver, vm.mem, {
        pattern: "random",
        readPercent: 50,
        blockBytes: 4096,
        queueDepth: 8,
        queues: 1,
        lbaRange: [4096, 256],
        durationMs: 600,
        seed: 11,
      });
      const finished = w.start();
      await new Promise((r) => setTimeout(r, 150));
      vm.port.pause();
      await tp.suspend(srcFn.controller.cntlid, SuspendType.Suspend, false);
      const delivered = vm.port.stats().interruptsDelivered;
      const completed = w.completedOps;
      const csts = vm.port.read32(0, 0x1c);
      let cstsSettled = false;
      void csts.then(() => {
        cstsSettled = true;
      });
      const state = await tp.getState(srcFn.controller.cntlid, { csvi: 0, csuuidi: 0 });
      await new Promise((r) => setTimeout(r, 30));
      assert.equal(vm.port.stats().interruptsDelivered, delivered, "no interrupt while paused");
      assert.equal(w.completedOps, completed, "no completion reaped while paused");
      assert.equal(cstsSettled, false, "a read waits while paused");

      dst = await exportFunction(dstFn);
      await vm.port.retarget(dst.client);
      src.client.close();
      await tp.suspend(dstFn.controller.cntlid, SuspendType.Suspend, false);
      await tp.setState(dstFn.controller.cntlid, { csvi: 0, csuuidi: 0 }, state);
      await tp.resume(dstFn.controller.cntlid);
      assert.equal(vm.port.isPaused, true, "retarget keeps a paused port paused");
      vm.port.resume();
      assert.equal((await csts) & 1, 1, "CSTS.RDY, read from the destination after resume");
      const s = await finished;
      assert.equal(s.errors, 0);
      assert.ok(w.completedOps > completed, "the workload went on after resume");
      const report = await w.verify();
      assert.equal(report.verified, true, JSON.stringify(report.failures));
      assert.ok(
        dstFn.controller.cqs.some((cq) => cq !== undefined && cq.cqid === 1),
        "I/O CQ 1 lives on VF4",
      );
      assert.ok(vm.events.some((e) => e.name === "retargeted"));
      const check = vm.events.find((e) => e.name === "switchover-check");
      assert.equal(check?.level, "info", check?.detail);
    } finally {
      await stopVm(vm);
      src.close();
      dst?.close();
    }
  });

  it("reads return all ones once the server is gone (logged, never thrown)", {
    timeout: 20_000,
  }, async () => {
    const fn = host.vf(1);
    const exported = await exportFunction(fn);
    const ram = GuestMemoryFd.create("guest-ram", 4 * MiB);
    const events: VfioUserPortEvent[] = [];
    const port = await VfioUserPort.attach(exported.client, ram, { log: (e) => events.push(e) });
    try {
      assert.notEqual(await port.read32(0, 0x08), 0xffffffff, "VS reads before");
      exported.server.close();
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(await port.read32(0, 0x08), 0xffffffff);
      assert.equal(await port.configRead(0, 2), 0xffff);
      assert.equal(await port.read64(0, 0), 0xffff_ffff_ffff_ffffn);
      port.write32(0, 0x14, 0); // dropped, not thrown
      await port.flush();
      assert.ok(events.some((e) => e.name === "server-disconnected"));
      assert.ok(events.some((e) => e.name === "read-failed"));
    } finally {
      await port.detach();
      ram.close();
      exported.close();
    }
  });
});
